#ifndef UTIL_H
#define UTIL_H

/* From src/util.c, a shared source linked into every app. */
const char *util_greeting(void);

#endif
