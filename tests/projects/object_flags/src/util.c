// Shared by both apps; loud compiles it with -DSHOUT into an object of its own.
#include "util.h"

const char *greeting(void)
{
#ifdef SHOUT
	return "HELLO";
#else
	return "hello";
#endif
}
