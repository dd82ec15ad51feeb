#include "util.h"

const char *util_greeting(void)
{
	return "util ok";
}
