/* lpmnet fuse --xml: fuse described in the Slicer Execution Model, the XML that 3D Slicer asks a
 * command-line module for (it runs the program with --xml, builds a panel from the answer,
 * then runs it with "--longflag value" for each parameter and the index parameters last).
 * Slicer's rules that shape this description:
 *   - an integer or enumeration parameter is always passed, with its default when untouched:
 *     so --passes, --color and --threads have values that mean "the default" (auto, none, 0);
 *   - a string, file or directory is passed only when not empty, a boolean only when true,
 *     an image only when a volume is selected;
 *   - an image is handed over as a temporary file named with the first of its fileExtensions
 *     (.nrrd when none is given): .nii here, since lpmnet reads NIfTI only.
 * tests/test_slicer_xml.sh checks that every option of lpmnet fuse --help is described here. */
#include "cli.h"

#include <string.h>

/* s with &, < and > escaped. */
static void text(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", out);
        else if (*s == '<') fputs("&lt;", out);
        else if (*s == '>') fputs("&gt;", out);
        else fputc(*s, out);
    }
}

static void element(FILE *out, const char *indent, const char *name, const char *value) {
    fprintf(out, "%s<%s>", indent, name);
    text(out, value);
    fprintf(out, "</%s>\n", name);
}

/* The start of a parameter: its name, flags, label and description (the closing tag is the
 * caller's, after the default and elements). flag may be NULL (no one-letter flag). */
static void param(FILE *out, const char *tag, const char *name, const char *flag,
                  const char *longflag, const char *label, const char *description) {
    fprintf(out, "    <%s>\n", tag);
    element(out, "      ", "name", name);
    if (flag) element(out, "      ", "flag", flag);
    if (longflag) element(out, "      ", "longflag", longflag);
    element(out, "      ", "label", label);
    element(out, "      ", "description", description);
}

/* <element> lines from a list "x, y, z" (the classical methods', the colour maps'). */
static void elements_from_list(FILE *out, const char *list) {
    while (*list) {
        size_t len = strcspn(list, ",");
        fprintf(out, "      <element>%.*s</element>\n", (int)len, list);
        list += len;
        while (*list == ',' || *list == ' ') list++;
    }
}

static void image(FILE *out, const char *name, const char *flag, const char *longflag, int index,
                  const char *channel, const char *label, const char *description) {
    fprintf(out, "    <image type=\"scalar\" fileExtensions=\".nii\">\n");
    element(out, "      ", "name", name);
    if (flag) element(out, "      ", "flag", flag);
    if (longflag) element(out, "      ", "longflag", longflag);
    if (index >= 0) fprintf(out, "      <index>%d</index>\n", index);
    element(out, "      ", "channel", channel);
    element(out, "      ", "label", label);
    element(out, "      ", "description", description);
    fprintf(out, "    </image>\n");
}

static void group(FILE *out, const char *label, const char *description) {
    fprintf(out, "  <parameters>\n");
    element(out, "    ", "label", label);
    element(out, "    ", "description", description);
}

void cli_slicer_xml(FILE *out) {
    fprintf(out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<executable>\n");
    element(out, "  ", "category", "Filtering.Image Fusion");
    element(out, "  ", "title", "LPM-Net fusion (lpmnet)");
    element(out, "  ", "description",
            "Fuses two co-registered 3-D volumes (MR/MR, CT/MR, PET/MR, PET/CT) with LPM-Net or a "
            "classical method. Each input is scaled to [0,1]; the result is float32 in [0,1] on the "
            "first volume's grid. Register the volumes first (e.g. with General Registration): "
            "Resample only uses the volumes' geometry.");
    element(out, "  ", "version", LPM_VERSION);
    element(out, "  ", "documentation-url", "");
    element(out, "  ", "license", "");
    element(out, "  ", "contributor", "lpmnet");

    group(out, "Input and output volumes", "The two volumes to fuse and the fused result");
    image(out, "inputA", NULL, NULL, 0, "input", "Volume A",
          "First volume; the result is written on its grid with its geometry");
    image(out, "inputB", NULL, NULL, 1, "input", "Volume B",
          "Second volume, on A's grid (or on any grid with Resample)");
    image(out, "outputVolume", "o", "out", -1, "output", "Fused volume",
          "The fused volume, float32 in [0,1] (RGB with a colour map)");
    fprintf(out, "  </parameters>\n");

    group(out, "Fusion", "The fusion method and LPM-Net's settings");
    param(out, "string-enumeration", "method", NULL, "method", "Method",
          "lpmnet, or a classical method for comparison");
    fprintf(out, "      <default>lpmnet</default>\n      <element>lpmnet</element>\n");
    elements_from_list(out, lpm_classical_names());
    fprintf(out, "    </string-enumeration>\n");
    param(out, "string-enumeration", "model", "m", "model", "Model",
          "The bundled LPM-Net model for the pair: mri (MR/MR), ct-mr, pet-mr (also SPECT/MR), "
          "pet-ct (also SPECT/CT)");
    fprintf(out, "      <default>mri</default>\n");
    for (const lpm_model_family *f = lpm_model_families(); f->name; f++)
        fprintf(out, "      <element>%s</element>\n", f->name);
    fprintf(out, "    </string-enumeration>\n");
    param(out, "string-enumeration", "passes", NULL, "passes", "Passes",
          "LPM-Net passes at shifted window grids, averaged; auto: 4 (1 with Exact or CUDA)");
    fprintf(out, "      <default>auto</default>\n");
    elements_from_list(out, "auto, 1, 2, 4, 8, 16");
    fprintf(out, "    </string-enumeration>\n");
    param(out, "boolean", "exact", NULL, "exact", "Exact",
          "The authors' computation: one pass, plain min-max scaling, no background rule; "
          "leave the preprocessing fields empty");
    fprintf(out, "      <default>false</default>\n    </boolean>\n");
    param(out, "string-enumeration", "device", NULL, "device", "Device",
          "cpu, or cuda for LPM-Net on an NVIDIA GPU (one pass)");
    fprintf(out, "      <default>cpu</default>\n      <element>cpu</element>\n"
                 "      <element>cuda</element>\n    </string-enumeration>\n");
    param(out, "integer", "threads", NULL, "threads", "Threads", "CPU threads; 0 uses all cores");
    fprintf(out, "      <default>0</default>\n      <constraints>\n        <minimum>0</minimum>\n"
                 "        <maximum>1024</maximum>\n        <step>1</step>\n      </constraints>\n"
                 "    </integer>\n");
    fprintf(out, "  </parameters>\n");

    group(out, "Preprocessing", "How each input is scaled to [0,1] before the fusion");
    param(out, "string", "clip", NULL, "clip", "Clip percentiles",
          "LOW,HIGH: clip each input to these intensity percentiles before scaling, e.g. 0.5,99.5 "
          "(empty: the default 0.5,100)");
    fprintf(out, "      <default></default>\n    </string>\n");
    param(out, "string", "ctWindow", NULL, "ct-window", "CT window",
          "Map this Hounsfield window of the CT input to [0,1]: bone, soft, lung or WIDTH,LEVEL "
          "(empty: none)");
    fprintf(out, "      <default></default>\n    </string>\n");
    image(out, "mask", NULL, "mask", -1, "input", "Mask",
          "Optional: scale inside this mask's nonzero voxels (A's grid); 0 outside");
    param(out, "boolean", "resample", NULL, "resample", "Resample",
          "Resample B onto A's grid through the volumes' world coordinates (trilinear) instead of "
          "requiring one grid");
    fprintf(out, "      <default>false</default>\n    </boolean>\n");
    fprintf(out, "  </parameters>\n");

    group(out, "Colour", "A colour output for PET and SPECT");
    param(out, "string-enumeration", "color", NULL, "color", "Colour map",
          "none: a grey fused volume; otherwise an RGB volume, the functional input through this "
          "map with its brightness replaced by the fusion");
    fprintf(out, "      <default>none</default>\n      <element>none</element>\n");
    elements_from_list(out, lpm_colormap_names());
    fprintf(out, "    </string-enumeration>\n");
    param(out, "string-enumeration", "functional", NULL, "functional", "Functional volume",
          "Which input the colour map shows: a or b");
    fprintf(out, "      <default>b</default>\n      <element>b</element>\n"
                 "      <element>a</element>\n    </string-enumeration>\n");
    fprintf(out, "  </parameters>\n");

    group(out, "Extra outputs and limits", "Optional files and checks");
    param(out, "directory", "components", NULL, "components", "Components folder",
          "Also write base.nii.gz and detail.nii.gz (LPM-Net's two components) into this folder");
    fprintf(out, "      <default></default>\n    </directory>\n");
    param(out, "directory", "html", NULL, "html", "Web page folder",
          "Also write index.html into this folder: A, B and the result side by side in linked "
          "3-D views, with the result's metrics");
    fprintf(out, "      <default></default>\n    </directory>\n");
    fprintf(out, "    <file fileExtensions=\".png\">\n");
    element(out, "      ", "name", "preview");
    element(out, "      ", "longflag", "preview");
    element(out, "      ", "channel", "output");
    element(out, "      ", "label", "Preview picture");
    element(out, "      ", "description",
            "A PNG of the mid-slices of A, B and the result (the name must end in .png)");
    fprintf(out, "    </file>\n");
    param(out, "string", "maxMemory", NULL, "max-memory", "Largest input",
          "Refuse a volume or weights file that declares more than this many bytes (K, M, G, T "
          "suffixes, e.g. 4G); empty: the available memory");
    fprintf(out, "      <default></default>\n    </string>\n");
    param(out, "boolean", "verbose", "v", "verbose", "Verbose",
          "Report each stage and its time in the log");
    fprintf(out, "      <default>false</default>\n    </boolean>\n");
    param(out, "boolean", "quiet", "q", "quiet", "Quiet",
          "Errors and warnings only: no progress or summary lines");
    fprintf(out, "      <default>false</default>\n    </boolean>\n");
    fprintf(out, "  </parameters>\n</executable>\n");
}
