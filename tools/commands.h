/* weft CLI: one function per subcommand, listed once in main.c. */
#ifndef WEFT_TOOLS_COMMANDS_H
#define WEFT_TOOLS_COMMANDS_H

typedef int (*weft_cmd_fn)(int argc, char **argv);

/* Each returns the process exit code: 0 ok, 1 runtime error, 2 usage. */
int weft_cmd_demo(int argc, char **argv);
int weft_cmd_bench(int argc, char **argv);
int weft_cmd_gradcheck(int argc, char **argv);
int weft_cmd_run(int argc, char **argv);
int weft_cmd_dot(int argc, char **argv);
int weft_cmd_train(int argc, char **argv);
int weft_cmd_generate(int argc, char **argv);
int weft_cmd_compare(int argc, char **argv);
int weft_cmd_summary(int argc, char **argv);

#endif
