/* The learning test of test_unet_learns.c with ten minutes of training instead of about two
 * (same data, same checks): the place to see the sampler's output at a less rushed point. */
#define LEARN_SECONDS 600.0
#define LEARN_NAME "test_long_unet_learns"
#include "tests/test_unet_learns.c"
