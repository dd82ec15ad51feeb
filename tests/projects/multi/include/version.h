/* Found through include/, which bpfbuild adds when the folder exists. */
#ifndef VERSION_H
#define VERSION_H

#define MULTI_VERSION "1.2.3"

#endif
