/* Fused regions compiled to machine code: each distinct f32 program becomes
 * one C function whose loop body evaluates all its instructions in
 * registers, a vector of elements at a time, and writes only the outputs.
 * The interpreter (ops/fused.c) runs one instruction at a time over a chunk
 * and passes every value through L1; an LSTM step's backward kernel took
 * 2-3x the time of the same arithmetic kept in registers.  This is what
 * PyTorch's Inductor does for CPUs, and tinygrad's clang backend: write C,
 * compile it with the system's compiler, load it.
 *
 * The source comes from the same expression table as the interpreter
 * (ops/elementwise_ops.h, stringified) and embeds fastmath.h, so an op's
 * arithmetic is still written once.  The library is cached on disk under a
 * hash of its source, flags and target (WEFT_CACHE_DIR, else
 * $XDG_CACHE_HOME/weft, ~/.cache/weft, /tmp/weft-cache-UID), so a program
 * compiles once per machine.  When anything fails (WEFT_CODEGEN=0, no
 * compiler, no cache directory, a compile error) the interpreter runs and
 * the compile report says why. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "graph_internal.h"
#include "op.h"
#include "weft/compile.h"
#include "elementwise_ops.h"
#include "text.h"

extern char **environ;

#define STR_(x) #x
#define STR(x) STR_(x)
#define EXPR_TEXT(id, EXPR) [WEFT_OP_##id] = #EXPR,
static const char *const expr_text[WEFT_OP_COUNT] = {
    UNARY_OPS(EXPR_TEXT) BINARY_OPS(EXPR_TEXT)[WEFT_OP_pow] = STR(POW_EXPR), [WEFT_OP_select] = STR(SELECT_EXPR)};

/* Program p's function body (everything inside the braces). */
static void body(weft_text *t, const weft_fused_prog *p) {
    int n_in = 0;
    for (int q = 0; q < p->n_instr; q++)
        for (int a = 0; a < weft_ops[p->ins[q].op].arity; a++)
            if (p->ins[q].arg[a] >= 0 && p->ins[q].arg[a] + 1 > n_in) n_in = p->ins[q].arg[a] + 1;
    int n_out = p->n_out >= 2 ? p->n_out : 1;
    for (int k = 0; k < n_in; k++) weft_text_put(t, "    const T *i%d = src[%d];\n", k, k);
    for (int k = 0; k < n_out; k++) weft_text_put(t, "    T *o%d = out[%d];\n", k, k);
    weft_text_put(t, "#pragma omp simd\n    for (int j = 0; j < len; j++) {\n");
    for (int q = 0; q < p->n_instr; q++) {
        const weft_fused_instr *in = &p->ins[q];
        char arg[3][16];
        for (int a = 0; a < 3; a++) {
            if (a >= weft_ops[in->op].arity) snprintf(arg[a], sizeof arg[a], "0");
            else if (in->arg[a] >= 0) snprintf(arg[a], sizeof arg[a], "i%d[j]", in->arg[a]);
            else snprintf(arg[a], sizeof arg[a], "v%d", -1 - in->arg[a]);
        }
        weft_text_put(t, "        T v%d; { const T a = %s, b = %s, c = %s; const double p = %a; (void)a; (void)b; (void)c; (void)p;"
               " v%d = (%s); }\n", q, arg[0], arg[1], arg[2], in->p, q, expr_text[in->op]);
    }
    for (int k = 0; k < n_out; k++) weft_text_put(t, "        o%d[j] = v%d;\n", k, p->n_out >= 2 ? p->out_ins[k] : p->n_instr - 1);
    weft_text_put(t, "    }\n");
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The same program (label and fn aside): each step of a recurrence has its
 * own copy of the step's program. */
static int same_prog(const weft_fused_prog *a, const weft_fused_prog *b) {
    if (a->n_instr != b->n_instr || a->n_out != b->n_out) return 0;
    for (int q = 0; q < a->n_instr; q++)
        if (a->ins[q].op != b->ins[q].op || a->ins[q].p != b->ins[q].p ||
            memcmp(a->ins[q].arg, b->ins[q].arg, sizeof a->ins[q].arg))
            return 0;
    return !memcmp(a->out_ins, b->out_ins, sizeof a->out_ins);
}

/* mkdir -p for the last two components at most (~/.cache/weft). */
static int ensure_dir(const char *dir) {
    if (!mkdir(dir, 0700) || errno == EEXIST) return 0;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent) return -1;
    *slash = 0;
    if (mkdir(parent, 0700) && errno != EEXIST) return -1;
    return mkdir(dir, 0700) && errno != EEXIST ? -1 : 0;
}

static void cache_dir(char *dir, size_t cap) {
    const char *e = getenv("WEFT_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (e && *e) snprintf(dir, cap, "%s", e);
    else if (x && *x) snprintf(dir, cap, "%s/weft", x);
    else if (h && *h) snprintf(dir, cap, "%s/.cache/weft", h);
    else snprintf(dir, cap, "/tmp/weft-cache-%ld", (long)getuid());
}

/* The target the interpreter's clones would pick on this CPU (valgrind, for
 * one, hides AVX-512: code built for it would not run there), and the
 * vector width: GCC's x86-64-v4 prefers 256-bit vectors; on 512 a GRU
 * forward step's program (64 x 128, in L2) ran 20.2 -> 17.1 us, the
 * LSTM's the same.  Lanes are independent: the same bits at any width. */
static void target_flags(const char *f[2]) {
    f[0] = f[1] = "-O2"; /* the baseline: a repeat of -O2 stands for no flag */
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) {
        f[0] = "-march=x86-64-v4";
        f[1] = "-mprefer-vector-width=512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        f[0] = "-march=x86-64-v3";
    }
#endif
}

/* weft's own flags for its elementwise files (CMakeLists.txt), as a library. */
#define CC_FLAGS "-O2", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared"
static const char *const cc_flags[] = {CC_FLAGS};

/* Run the compiler on src, writing lib; its messages go to log. */
static int run_cc(const char *cc, const char *const target[2], const char *src, const char *lib, const char *log) {
    char *argv[] = {(char *)cc, (char *)target[0], (char *)target[1], CC_FLAGS, "-o", (char *)lib, (char *)src, NULL};
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) return -1;
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, cc, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

void weft_fused_codegen(weft_graph *g, int enable, struct weft_compile_report *r) {
    double t0 = weft_now_ms();
    r->codegen_kernels = r->codegen_progs = 0;
    r->codegen_ms = 0;
    r->codegen_cached = 0;
    r->codegen_note[0] = 0;
    const char *env = getenv("WEFT_CODEGEN");
    if (enable < 0 || (env && !strcmp(env, "0"))) {
        for (int i = 0; i < g->n; i++) /* a program per fused node */
            r->codegen_progs += g->nodes[i].kind == WEFT_NODE_OP && g->nodes[i].op == WEFT_OP_fused &&
                                g->nodes[i].dtype == WEFT_F32;
        snprintf(r->codegen_note, sizeof r->codegen_note, "off (%s)", enable < 0 ? "asked" : "WEFT_CODEGEN=0");
        return;
    }
    /* the f32 programs: each distinct body gets one function */
    int *fn_of = malloc((size_t)(g->n_progs ? g->n_progs : 1) * sizeof *fn_of);
    int *first = malloc((size_t)(g->n_progs ? g->n_progs : 1) * sizeof *first); /* of each function */
    char **bodies = calloc((size_t)(g->n_progs ? g->n_progs : 1), sizeof *bodies);
    weft_text file = {0};
    char dir[3072], lib[4096], src[4096], log[4096];
    int n_fn = 0;
    if (!fn_of || !bodies || !first) goto done;
    for (int i = 0; i < g->n_progs; i++) fn_of[i] = -1;
    for (int i = 0; i < g->n; i++) {
        const weft_node_rec *nd = &g->nodes[i];
        if (nd->kind != WEFT_NODE_OP || nd->op != WEFT_OP_fused || nd->dtype != WEFT_F32) continue;
        int id = (int)nd->attr.i[0];
        if (id < 0 || id >= g->n_progs || fn_of[id] >= 0) continue;
        r->codegen_progs++;
        int same = 0;
        while (same < n_fn && !same_prog(&g->progs[first[same]], &g->progs[id])) same++;
        if (same < n_fn) {
            fn_of[id] = same;
            continue;
        }
        weft_text b = {0};
        body(&b, &g->progs[id]);
        if (b.failed) {
            free(b.s);
            goto done;
        }
        int f = 0;
        while (f < n_fn && strcmp(bodies[f], b.s)) f++;
        if (f == n_fn) first[n_fn] = id, bodies[n_fn++] = b.s;
        else free(b.s);
        fn_of[id] = f;
    }
    if (!n_fn) goto done;
    weft_text_put(&file, "/* weft: fused kernels, generated (ops/fused_codegen.c) */\n");
    if (weft_text_read(&file, WEFT_OPS_DIR "/fastmath.h", (size_t)-1) < 0) {
        snprintf(r->codegen_note, sizeof r->codegen_note, "off (cannot read %s)", WEFT_OPS_DIR "/fastmath.h");
        goto done;
    }
    const char *target[2], *cc = getenv("WEFT_CC");
    target_flags(target);
    if (!cc || !*cc) cc = "cc";
    weft_text_put(&file, "\n#include <tgmath.h>\ntypedef float T;\n");
    for (int f = 0; f < n_fn; f++) {
        weft_text_put(&file, "void weft_fk%d(int len, const T *const *src, T *const *out) {\n", f);
        weft_text_put(&file, "%s}\n", bodies[f]);
    }
    if (file.failed) goto done;
    uint64_t h = fnv1a(14695981039346656037ull, file.s, file.n);
    for (int k = 0; k < 2; k++) h = fnv1a(h, target[k], strlen(target[k]) + 1);
    for (size_t k = 0; k < sizeof cc_flags / sizeof *cc_flags; k++) h = fnv1a(h, cc_flags[k], strlen(cc_flags[k]) + 1);
    cache_dir(dir, sizeof dir);
    if (ensure_dir(dir)) {
        snprintf(r->codegen_note, sizeof r->codegen_note, "off (cannot make the cache directory %.100s)", dir);
        goto done;
    }
    struct stat ds;
    if (stat(dir, &ds) || !S_ISDIR(ds.st_mode) || ds.st_uid != geteuid() || (ds.st_mode & S_IWOTH)) {
        /* code is loaded from here: only from a directory no one else may write */
        snprintf(r->codegen_note, sizeof r->codegen_note, "off (the cache directory %.100s is not ours alone)", dir);
        goto done;
    }
    snprintf(lib, sizeof lib, "%s/fused-%016llx.so", dir, (unsigned long long)h);
    struct stat sb;
    r->codegen_cached = !stat(lib, &sb);
    /* loaded for the life of the process: executors share the library */
    void *so = r->codegen_cached ? dlopen(lib, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!so && r->codegen_cached) { /* not a library (a damaged cache): made again */
        unlink(lib);
        r->codegen_cached = 0;
    }
    if (!so) {
        /* compile to private names, then rename: concurrent compiles of one
         * source each write their own file and the last rename wins */
        static int serial;
        int k = __atomic_fetch_add(&serial, 1, __ATOMIC_RELAXED);
        char tmp_lib[4096 + 32];
        snprintf(src, sizeof src, "%s/fused-%016llx-%ld-%d.c", dir, (unsigned long long)h, (long)getpid(), k);
        snprintf(log, sizeof log, "%s/fused-%016llx.log", dir, (unsigned long long)h);
        snprintf(tmp_lib, sizeof tmp_lib, "%s.so", src);
        FILE *f = fopen(src, "w");
        int ok = f && fwrite(file.s, 1, file.n, f) == file.n;
        if (f && fclose(f)) ok = 0;
        ok = ok && !run_cc(cc, target, src, tmp_lib, log) && !rename(tmp_lib, lib);
        unlink(src);
        if (!ok) {
            unlink(tmp_lib);
            snprintf(r->codegen_note, sizeof r->codegen_note, "off (the compiler '%.40s' failed: %.120s)", cc, log);
            goto done;
        }
        unlink(log);
        so = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    }
    if (!so) {
        snprintf(r->codegen_note, sizeof r->codegen_note, "off (cannot load %.150s)", lib);
        goto done;
    }
    weft_fused_fn *fns = malloc((size_t)n_fn * sizeof *fns);
    int ok = fns != NULL;
    for (int f = 0; ok && f < n_fn; f++) {
        char name[32];
        snprintf(name, sizeof name, "weft_fk%d", f);
        *(void **)&fns[f] = dlsym(so, name);
        ok = fns[f] != NULL;
    }
    if (ok) {
        for (int i = 0; i < g->n_progs; i++)
            if (fn_of[i] >= 0) g->progs[i].fn = fns[fn_of[i]];
        r->codegen_kernels = n_fn;
        snprintf(r->codegen_note, sizeof r->codegen_note, "%.190s", lib);
    } else {
        snprintf(r->codegen_note, sizeof r->codegen_note, "off (%.150s lacks a kernel)", lib);
    }
    free(fns);
done:
    if (!r->codegen_note[0] && n_fn) snprintf(r->codegen_note, sizeof r->codegen_note, "off (out of memory)");
    for (int f = 0; bodies && f < n_fn; f++) free(bodies[f]);
    free(bodies);
    free(fn_of);
    free(first);
    free(file.s);
    r->codegen_ms = weft_now_ms() - t0;
}
