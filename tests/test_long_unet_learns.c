/* The learning test of test_unet_learns.c with 6000 training steps instead of 1000 (same data),
 * which also asserts one peak per frame moving right monotonically. */
#define LEARN_STEPS 6000
#define LEARN_NAME "test_long_unet_learns"
#include "tests/test_unet_learns.c"
