/* Shared by alpha.bpf.c and beta.bpf.c only: editing it rebuilds exactly those two. */
#ifndef COMMON_H
#define COMMON_H

#define COMMON_SLOTS 4

#endif
