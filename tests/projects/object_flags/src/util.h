#ifndef UTIL_H
#define UTIL_H
const char *greeting(void);
#endif
