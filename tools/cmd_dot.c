/* weft dot: draw a recurrent model's graph at a stage of its life —
 * forward, forward + backward, a training step, or compiled — unrolled,
 * rolled or collapsed, optionally with a profile overlay.  The drawing
 * itself is the library's (core/viz.c); this file builds the model and
 * renders through libgvc (tools/render.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "render.h"
#include "tiled.h"
#include "weft/compile.h"
#include "weft/rnn.h"
#include "weft/viz.h"

enum { LAYOUT_AUTO, LAYOUT_DOT, LAYOUT_TILED };
/* Above this many drawn nodes, auto layout tiles (see tools/tiled.h). */
#define TILED_ABOVE 1000

typedef enum stage { STAGE_FORWARD, STAGE_BACKWARD, STAGE_TRAINING, STAGE_OPTIMIZED } stage;
static const char *const stage_names[] = {"forward", "backward", "training", "optimized"};

typedef struct dot_args {
    const char *cell, *out, *format, *title, *dump_dir;
    int64_t I, H, T, B, classes;
    int layers, bidirectional;
    stage stage;
    int profile_runs; /* 0 = no profile */
    int layout;       /* LAYOUT_* */
    int verbose;
    weft_viz_options viz;
} dot_args;

static void dot_usage(FILE *f) {
    fprintf(f,
            "usage: weft dot --cell CELL [--input-size I] [--hidden-size H] [--seq-len T]\n"
            "                [--layers L] [--bidirectional] [--batch B]\n"
            "                [--stage forward|backward|training|optimized] [--rolled] [--collapse K]\n"
            "                [--grad-links] [--left-to-right] [--all-nodes] [--profile [RUNS]]\n"
            "                [--title TEXT]"
            " [--dump-passes DIR] [--layout auto|dot|tiled]\n"
            "                [--format dot|svg|png|pdf] [-v] -o FILE\n"
            "\n"
            "CELL: a built-in (rnn_tanh, rnn_relu, lstm, gru, gru_reset_before) or a .cell file\n"
            "      (its variable names label the nodes).  Defaults: I=8 H=16 T=3 L=1 B=2.\n"
            "Stages: forward     the unrolled model\n"
            "        backward    + the backward pass of sum(output * grad_output)\n"
            "        training    + a linear head, cross-entropy loss and every gradient\n"
            "        optimized   the training graph after the compiler's passes (-v: their report)\n"
            "--rolled       draw each layer's cell once, its state edges drawn back into it\n"
            "--collapse K   show steps 0..K-1 and the last one; one node says how many are hidden\n"
            "--grad-links   dotted edge from each gradient node to the node it differentiates\n"
            "--all-nodes    draw scalar constants too (left out by default)\n"
            "--profile      run the graph (RUNS times, default 5) and colour nodes by their time\n"
            "--format       default: from the extension of -o (dot when none matches)\n"
            "--layout       dot: Graphviz's dot on the whole graph; tiled: dot on each step,\n"
            "               steps placed on a grid (fast for long sequences); auto: tiled for an\n"
            "               unrolled top-down view with a backward pass or above %d nodes\n"
            "Rendering is Graphviz's library, in-process; --format dot writes the dot text.\n",
            TILED_ABOVE);
}

static int64_t positive(const char *opt, const char *v) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == 0 || *end != 0 || errno || x < 1 || x > (1LL << 30)) {
        fprintf(stderr, "weft dot: %s needs a positive integer, not '%s'\n", opt, v);
        return -1;
    }
    return x;
}

/* 0 ok, 1 --help printed, 2 usage error. */
static int parse_args(int argc, char **argv, dot_args *a) {
    *a = (dot_args){.I = 8, .H = 16, .T = 3, .B = 2, .classes = 4, .layers = 1};
    a->viz.hide_scalars = 1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { dot_usage(stdout); return 1; }
        if (!strcmp(s, "--bidirectional")) { a->bidirectional = 1; continue; }
        if (!strcmp(s, "--rolled")) { a->viz.rolled = 1; continue; }
        if (!strcmp(s, "--grad-links")) { a->viz.show_grad_links = 1; continue; }
        if (!strcmp(s, "--all-nodes")) { a->viz.hide_scalars = 0; continue; }
        if (!strcmp(s, "--left-to-right")) { a->viz.left_to_right = 1; continue; }
        if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) { a->verbose = 1; continue; }
        if (!strcmp(s, "--profile")) {
            a->profile_runs = 5;
            if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9') {
                int64_t n = positive(s, argv[++i]);
                if (n < 0) return 2;
                a->profile_runs = (int)n;
            }
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "weft dot: unknown option or missing value: '%s'\n", s);
            dot_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int64_t *num = !strcmp(s, "--input-size")  ? &a->I
                       : !strcmp(s, "--hidden-size") ? &a->H
                       : !strcmp(s, "--seq-len")     ? &a->T
                       : !strcmp(s, "--batch")       ? &a->B
                       : !strcmp(s, "--classes")     ? &a->classes
                                                     : NULL;
        if (num) {
            if ((*num = positive(s, v)) < 0) return 2;
        } else if (!strcmp(s, "--layers") || !strcmp(s, "--num-layers")) {
            int64_t n = positive(s, v);
            if (n < 0) return 2;
            a->layers = (int)n;
        } else if (!strcmp(s, "--collapse")) {
            int64_t n = positive(s, v);
            if (n < 0) return 2;
            a->viz.collapse = (int)n;
        } else if (!strcmp(s, "--cell")) {
            a->cell = v;
        } else if (!strcmp(s, "-o") || !strcmp(s, "--output")) {
            a->out = v;
        } else if (!strcmp(s, "--format")) {
            a->format = v;
        } else if (!strcmp(s, "--title")) {
            a->title = v;
        } else if (!strcmp(s, "--layout")) {
            if (!strcmp(v, "auto")) a->layout = LAYOUT_AUTO;
            else if (!strcmp(v, "dot")) a->layout = LAYOUT_DOT;
            else if (!strcmp(v, "tiled")) a->layout = LAYOUT_TILED;
            else {
                fprintf(stderr, "weft dot: --layout is auto, dot or tiled, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(s, "--dump-passes")) {
            a->dump_dir = v;
        } else if (!strcmp(s, "--stage")) {
            int k = 0;
            while (k < 4 && strcmp(v, stage_names[k])) k++;
            if (k == 4) {
                fprintf(stderr, "weft dot: --stage is forward, backward, training or optimized, not '%s'\n", v);
                return 2;
            }
            a->stage = (stage)k;
        } else {
            fprintf(stderr, "weft dot: unknown option '%s'\n", s);
            dot_usage(stderr);
            return 2;
        }
    }
    if (!a->cell || !a->out) {
        fprintf(stderr, "weft dot: --cell and -o are required\n");
        dot_usage(stderr);
        return 2;
    }
    if (!a->format) a->format = weft_render_format_of(a->out);
    static const char *const formats[] = {"dot", "svg", "png", "pdf"};
    int ok = 0;
    for (int k = 0; k < 4; k++) ok |= !strcmp(a->format, formats[k]);
    if (!ok) {
        fprintf(stderr, "weft dot: --format is dot, svg, png or pdf, not '%s'\n", a->format);
        return 2;
    }
    if (a->viz.rolled && a->viz.collapse) {
        fprintf(stderr, "weft dot: --rolled and --collapse do not go together (the rolled view has one step)\n");
        return 2;
    }
    if (a->dump_dir && a->stage != STAGE_OPTIMIZED) {
        fprintf(stderr, "weft dot: --dump-passes needs --stage optimized\n");
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------ the model */

typedef struct model {
    weft_graph *g;
    weft_cell *cell;
    weft_rnn *rnn;
    weft_node feeds[3];      /* x, then grad_output or labels */
    int n_feeds;
    weft_node *outputs;      /* what a run computes: outputs or loss + grads */
    int n_outputs;
    weft_exec *compiled;     /* optimized stage: owns the graph drawn */
} model;

static void model_free(model *m) {
    weft_exec_free(m->compiled);
    weft_rnn_free(m->rnn);
    weft_cell_free(m->cell);
    weft_graph_free(m->g);
    free(m->outputs);
}

/* The model of a, built up to the stage asked (optimized builds the
 * training graph; the passes run after). */
static weft_status model_build(const dot_args *a, model *m) {
    *m = (model){0};
    if (!(m->g = weft_graph_new())) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    if (!(m->cell = weft_cell_get(a->cell))) return weft_error(WEFT_ERR_NOT_FOUND, "%s", weft_last_error());
    weft_graph *g = m->g;
    weft_rnn_config cfg = weft_rnn_config_default(a->I, a->H);
    cfg.num_layers = a->layers;
    cfg.bidirectional = a->bidirectional;
    weft_status s = weft_rnn_new(g, m->cell, &cfg, &m->rnn);
    if (s) return s;
    weft_rng rng = weft_rng_make(1);
    if ((s = weft_rnn_init(g, m->rnn, &rng))) return s;
    int64_t DH = (a->bidirectional ? 2 : 1) * a->H;
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(a->T, a->B, a->I));
    weft_rnn_inputs in = {.x = x, .mask = WEFT_NONE, .train = WEFT_NONE};
    weft_rnn_result r;
    if ((s = weft_rnn_apply(g, m->rnn, &in, &r))) return s;
    m->feeds[m->n_feeds++] = x;

    int np = weft_graph_params(g, NULL, 0);
    m->outputs = malloc((size_t)(np + 8) * sizeof *m->outputs);
    if (!m->outputs) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    if (a->stage == STAGE_FORWARD) {
        m->outputs[m->n_outputs++] = r.output;
        for (int k = 0; k < m->cell->num_states; k++) m->outputs[m->n_outputs++] = r.state_n[k];
        return weft_graph_status(g);
    }
    weft_node loss;
    if (a->stage == STAGE_BACKWARD) {
        /* The vector-Jacobian product PyTorch's backward computes. */
        weft_node go = weft_input(g, "grad_output", WEFT_F32, WEFT_SHAPE(a->T, a->B, DH));
        m->feeds[m->n_feeds++] = go;
        loss = weft_sum(g, weft_mul(g, r.output, go), NULL, 0, 0);
        weft_node_set_name(g, loss, "sum(output * grad_output)");
    } else {
        weft_linear head;
        if ((s = weft_linear_new(g, "head", DH, a->classes, 1, WEFT_F32, &rng, &head))) return s;
        weft_node labels = weft_input(g, "labels", WEFT_I32, WEFT_SHAPE(a->B));
        m->feeds[m->n_feeds++] = labels;
        loss = weft_loss_cross_entropy(g, weft_linear_apply(g, &head, r.last), labels);
        weft_node_set_name(g, loss, "loss");
    }
    if ((s = weft_graph_status(g))) return weft_error(s, "%s", weft_graph_error(g));
    np = weft_graph_params(g, NULL, 0);
    /* wrt[0 .. nw) then, after the loss slot, grads[0 .. nw): nw <= np + 1 */
    weft_node *wrt = realloc(m->outputs, (size_t)(2 * (np + 1) + 1) * sizeof *wrt);
    if (!wrt) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    m->outputs = wrt;
    weft_graph_params(g, wrt, np);
    wrt[np] = x; /* the backward stage also gives the input's gradient, like PyTorch */
    int nw = a->stage == STAGE_BACKWARD ? np + 1 : np;
    weft_node *grads = m->outputs + nw + 1;
    if ((s = weft_grad(g, loss, wrt, nw, grads))) return s;
    m->outputs[0] = loss;
    memmove(m->outputs + 1, grads, (size_t)nw * sizeof *grads);
    m->n_outputs = nw + 1;
    return WEFT_OK;
}

/* The compiler's passes (core/compile.c, the named list of core/pass.h)
 * on the training graph; dump_dir gets the graph after each one. */
static weft_status run_passes(model *m, const char *dump_dir, int verbose) {
    weft_compile_options co = {.dump_dir = dump_dir, .threads = 1};
    m->compiled = weft_exec_compile(m->g, m->outputs, m->n_outputs, &co);
    if (!m->compiled) return weft_error(WEFT_ERR_GRAPH, "compile: %s", weft_last_error());
    if (verbose) weft_compile_report_print(weft_exec_report(m->compiled), stdout);
    return WEFT_OK;
}

/* ---------------------------------------------------------------- profile */

static void fill_random(void *data, weft_dtype t, int64_t n, int64_t mod, weft_rng *rng) {
    for (int64_t i = 0; i < n; i++) {
        if (t == WEFT_I32) ((int32_t *)data)[i] = (int32_t)weft_rng_below(rng, mod);
        else if (t == WEFT_F64) ((double *)data)[i] = 2 * weft_rng_uniform(rng) - 1;
        else ((float *)data)[i] = (float)(2 * weft_rng_uniform(rng) - 1);
    }
}

/* Runs the model `runs` times on random inputs and returns the time of
 * every node summed over the runs (ms), in *ms_out (free it). */
static weft_status profile(model *m, const dot_args *a, double **ms_out) {
    *ms_out = NULL;
#ifdef WEFT_HAVE_EXEC_PROFILE
    weft_graph *g = m->g;
    int N = weft_graph_node_count(g);
    double *ms = calloc((size_t)N, sizeof *ms);
    weft_exec *e = weft_exec_new(g, m->outputs, m->n_outputs);
    weft_status s = ms && e ? WEFT_OK : weft_error(WEFT_ERR_NOMEM, "profile: %s", weft_last_error());
    weft_rng rng = weft_rng_make(2);
    for (int k = 0; k < m->n_feeds && s == WEFT_OK; k++) {
        weft_node f = m->feeds[k];
        weft_dtype t = weft_node_dtype(g, f);
        int64_t n = weft_shape_numel(weft_node_shape(g, f));
        void *buf = malloc((size_t)n * weft_dtype_size(t) + 1);
        if (!buf) { s = weft_error(WEFT_ERR_NOMEM, "profile: out of memory"); break; }
        fill_random(buf, t, n, a->classes, &rng);
        s = weft_exec_feed(e, f, buf, (size_t)n * weft_dtype_size(t));
        free(buf);
    }
    if (s == WEFT_OK) s = weft_exec_run(e); /* warm-up, not counted */
    if (s == WEFT_OK) weft_exec_set_profile(e, ms);
    for (int r = 0; r < a->profile_runs && s == WEFT_OK; r++) s = weft_exec_run(e);
    weft_exec_free(e);
    if (s) { free(ms); return s; }
    *ms_out = ms;
    return WEFT_OK;
#else
    (void)m;
    (void)a;
    (void)fill_random;
    return weft_error(WEFT_ERR_UNSUPPORTED,
                      "--profile is not yet available: the executor has no per-node timing hook "
                      "(weft_exec_set_profile)");
#endif
}

/* ------------------------------------------------------------------- main */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int weft_cmd_dot(int argc, char **argv) {
    dot_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    double t0 = now_s();
    model m;
    double *ms = NULL;
    char *text = NULL, title[512];
    weft_viz_stats st;
    weft_status s = model_build(&a, &m);
    if (s == WEFT_OK && a.stage == STAGE_OPTIMIZED) s = run_passes(&m, a.dump_dir, a.verbose);
    if (s == WEFT_OK && a.stage == STAGE_OPTIMIZED && a.profile_runs)
        s = weft_error(WEFT_ERR_UNSUPPORTED, "--profile draws the reference graph: leave out --stage optimized");
    if (s == WEFT_OK && a.profile_runs) s = profile(&m, &a, &ms);
    if (s == WEFT_OK) {
        if (!a.title) {
            char layers[32] = "";
            if (a.layers > 1) snprintf(layers, sizeof layers, ", layers=%d", a.layers);
            snprintf(title, sizeof title, "%s, %s: T=%lld, B=%lld, I=%lld, H=%lld%s%s%s", m.cell->name,
                     stage_names[a.stage], (long long)a.T, (long long)a.B, (long long)a.I, (long long)a.H,
                     layers, a.bidirectional ? ", bidirectional" : "", a.viz.rolled ? " (rolled)" : "");
            a.title = title;
        }
        a.viz.title = a.title;
        a.viz.node_ms = ms;
        a.viz.mark_views = m.compiled != NULL;
        s = weft_viz_dot_string(m.compiled ? weft_exec_graph(m.compiled) : m.g, &a.viz, &text, &st);
    }
    double t1 = now_s();
    if (s == WEFT_OK) {
        if (!strcmp(a.format, "dot")) {
            FILE *f = fopen(a.out, "w");
            if (!f) s = weft_error(WEFT_ERR_IO, "%s: cannot open for writing: %s", a.out, strerror(errno));
            else {
                fputs(text, f);
                if (fclose(f) != 0) s = weft_error(WEFT_ERR_IO, "%s: write failed", a.out);
            }
        } else {
            /* tiles read better once there is a backward pass (forward steps
             * in one column, their backward next to them) and are the only
             * layout that stays fast for long sequences */
            int tiled = a.layout == LAYOUT_TILED ||
                        (a.layout == LAYOUT_AUTO && !a.viz.rolled && !a.viz.left_to_right &&
                         (st.nodes > TILED_ABOVE || st.backward_clusters > 0));
            s = tiled ? weft_render_tiled(text, a.format, a.out) : weft_render_dot(text, a.format, a.out);
        }
    }
    double t2 = now_s();
    if (s == WEFT_OK) {
        printf("%s: %d of %d nodes drawn, %d step clusters, %d edges%s\n", a.out, st.nodes,
               weft_graph_node_count(m.compiled ? weft_exec_graph(m.compiled) : m.g), st.step_clusters, st.edges, st.elisions ? ", steps collapsed" : "");
        if (a.verbose)
            printf("build + dot text %.3f s, %s %.3f s\n", t1 - t0,
                   strcmp(a.format, "dot") ? "layout + render" : "write", t2 - t1);
    } else {
        fprintf(stderr, "weft dot: %s\n", weft_last_error());
    }
    free(text);
    free(ms);
    model_free(&m);
    return s == WEFT_OK ? 0 : 1;
}
