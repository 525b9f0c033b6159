/* Checkpoints survive crashes: a training process that saves after every
 * step is killed (SIGKILL) over and over — often while a save is under way
 * — and after every kill the checkpoint on disk loads, holds bit for bit
 * the parameters of an uninterrupted run at its step, and resumes to the
 * next step exactly.  A full disk leaves the previous checkpoint intact.
 *
 * The children are forked: the test runs with one thread so no OpenMP
 * thread pool exists at fork time (libgomp's pool does not survive fork). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tinymodel.h"

/* Big enough that a save takes a while next to a step (Adam keeps two
 * slots per parameter: the file is about 1.2 MB). */
static const tm_config cfg = {"lstm", 3, 4, 16, 96, 4, 1, 0.0, 5, WEFT_OPTIM_ADAM};
enum { STEPS = 24, MAX_KILLS = 100 };

static char dir[512], path[600];

static void setup(void) {
    weft_set_threads(1);
    snprintf(dir, sizeof dir, "%s/crash_safety_%d", WEFT_BINARY_DIR, (int)getpid());
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
}

static int remove_temps(void);

static void teardown(void) {
    remove_temps();
    unlink(path);
    rmdir(dir);
}

TestSuite(crash_safety, .init = setup, .fini = teardown);

/* Stale temp files of killed savers (path.tmp.<pid>): counts and removes
 * them. */
static int remove_temps(void) {
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".tmp.")) continue;
        char p[1100];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
        n++;
    }
    closedir(d);
    return n;
}

/* The child: resume from the checkpoint if there is one, then train and
 * save after every step until STEPS.  Exit codes: 0 done, 3 the
 * checkpoint did not load, 4 a step or save failed. */
static void child(void) {
    tm_model m;
    if (tm_build(&m, &cfg)) _exit(4);
    if (access(path, F_OK) == 0 && weft_trainer_load(m.trainer, path) != WEFT_OK) _exit(3);
    while (weft_trainer_steps(m.trainer) < STEPS) {
        if (tm_step(&m, NULL) || weft_trainer_save(m.trainer, path)) _exit(4);
    }
    _exit(0);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Test(crash_safety, killed_while_saving_the_last_checkpoint_resumes, .timeout = 300) {
    /* the uninterrupted run: parameters after every step */
    tm_model m;
    cr_assert_eq(tm_build(&m, &cfg), WEFT_OK, "%s", weft_last_error());
    size_t np = tm_param_count(&m);
    float *ref = malloc(sizeof *ref * np * (STEPS + 1)), *got = malloc(sizeof *got * np);
    tm_params(&m, ref);
    for (int s = 1; s <= STEPS; s++) {
        cr_assert_eq(tm_step(&m, NULL), WEFT_OK, "%s", weft_last_error());
        tm_params(&m, ref + (size_t)s * np);
    }
    tm_free(&m);

    srand(12345);
    int kills = 0, during_save = 0, resumed = 0, last_step = -1;
    for (int round = 0; round < MAX_KILLS; round++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) child();
        /* Half the rounds: wait until the child's temp file exists (a save
         * has begun), then kill within 3 ms, mostly while it saves.  The
         * others: kill at a random time in the first 100 ms. */
        char tmp[700];
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)pid);
        int status = 0, reaped = 0;
        if (round % 2 == 0) {
            double t0 = now();
            while (access(tmp, F_OK) != 0 && now() - t0 < 10 && !reaped)
                reaped = waitpid(pid, &status, WNOHANG) == pid;
            usleep((useconds_t)(rand() % 3000));
        } else {
            usleep((useconds_t)(rand() % 100000));
        }
        /* the last round lets the child finish: a slow machine still
         * reaches the end, and the kills above were checked all the same */
        if (round == MAX_KILLS - 1 && !reaped) {
            reaped = waitpid(pid, &status, 0) == pid;
        }
        if (!reaped) {
            kill(pid, SIGKILL);
            cr_assert_eq(waitpid(pid, &status, 0), pid);
        }
        if (WIFEXITED(status)) {
            cr_assert_eq(WEXITSTATUS(status), 0, "child exit %d (3: the checkpoint did not load)",
                         WEXITSTATUS(status));
        } else {
            cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
            kills++;
        }
        during_save += remove_temps() > 0;

        /* whatever the kill interrupted, the checkpoint on disk is whole */
        if (access(path, F_OK) != 0) continue; /* killed before the first save */
        tm_config other = cfg;
        other.init_seed = 99; /* everything must come from the file */
        cr_assert_eq(tm_build(&m, &other), WEFT_OK);
        cr_assert_eq(weft_trainer_load(m.trainer, path), WEFT_OK,
                     "round %d: the checkpoint does not load: %s", round, weft_last_error());
        int k = (int)weft_trainer_steps(m.trainer);
        cr_assert(k >= 1 && k <= STEPS && k >= last_step, "round %d: step %d after %d", round, k,
                  last_step);
        last_step = k;
        tm_params(&m, got);
        cr_assert_arr_eq(got, ref + (size_t)k * np, np * sizeof *got,
                         "round %d: the checkpoint of step %d holds other parameters", round, k);
        if (k < STEPS) {
            cr_assert_eq(tm_step(&m, NULL), WEFT_OK, "%s", weft_last_error());
            tm_params(&m, got);
            cr_assert_arr_eq(got, ref + (size_t)(k + 1) * np, np * sizeof *got,
                             "round %d: resuming from step %d differs from the uninterrupted run",
                             round, k);
            resumed++;
        }
        tm_free(&m);
        if (k == STEPS) {
            if (during_save >= 3) break;
            /* A loaded machine can train to the end before enough kills
             * landed in a save: start over from no checkpoint. */
            remove(path);
            last_step = -1;
        }
    }
    fprintf(stderr, "crash safety: %d kills, %d during a save, %d resumes checked, last step %d\n",
            kills, during_save, resumed, last_step);
    cr_assert_eq(last_step, STEPS, "training did not reach step %d through the kills", STEPS);
    cr_assert_geq(during_save, 3, "only %d kills hit a save: the test did not test", during_save);
    free(ref);
    free(got);
}

/* Saving onto a full disk (RLIMIT_FSIZE below the checkpoint's size): a
 * clear error, the previous checkpoint byte for byte intact and loadable,
 * no temp file.  In a child: the limit is per process. */
Test(crash_safety, full_disk_keeps_previous_checkpoint) {
    tm_model m;
    cr_assert_eq(tm_build(&m, &cfg), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(tm_step(&m, NULL), WEFT_OK);
    cr_assert_eq(weft_trainer_save(m.trainer, path), WEFT_OK, "%s", weft_last_error());
    struct stat st0;
    cr_assert_eq(stat(path, &st0), 0);
    FILE *f = fopen(path, "rb");
    char *before = malloc((size_t)st0.st_size);
    cr_assert_eq(fread(before, 1, (size_t)st0.st_size, f), (size_t)st0.st_size);
    fclose(f);

    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {(rlim_t)st0.st_size / 2, (rlim_t)st0.st_size / 2};
        setrlimit(RLIMIT_FSIZE, &lim);
        tm_step(&m, NULL);
        weft_status s = weft_trainer_save(m.trainer, path);
        const char *msg = weft_last_error();
        if (write(fds[1], msg, strlen(msg)) < 0) _exit(9);
        _exit(s == WEFT_ERR_IO ? 0 : 1);
    }
    close(fds[1]);
    char msg[1024] = "";
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = 0;
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "save on a full disk: %s", msg);
    cr_assert(strstr(msg, "ckpt.safetensors: cannot save (write of"), "%s", msg);
    cr_assert(strstr(msg, "File too large"), "%s", msg);

    f = fopen(path, "rb");
    char *after = malloc((size_t)st0.st_size + 1);
    size_t got = fread(after, 1, (size_t)st0.st_size + 1, f);
    fclose(f);
    cr_assert(got == (size_t)st0.st_size && !memcmp(before, after, got), "the checkpoint changed");
    cr_assert_eq(remove_temps(), 0, "a temp file was left behind");
    cr_assert_eq(weft_trainer_load(m.trainer, path), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_trainer_steps(m.trainer), 1);
    free(before);
    free(after);
    tm_free(&m);
}
