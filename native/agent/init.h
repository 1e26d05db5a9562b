/* `tvm-agent init [--] CMD...` (also run as /sbin/docker-init): the --init PID 1. */
#ifndef TVM_INIT_H
#define TVM_INIT_H
int init_main(int argc, char **argv);
#endif
