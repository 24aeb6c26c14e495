/* The stb image decoder and encoder (Debian's libstb-dev headers, the same stb_image 2.27 source as
   its libstb.so, asserts on as there) compiled into the fuzz targets with the sanitizers and the
   fuzzer's coverage, so that libFuzzer sees inside the decoder and ASan checks its buffers.
   scripts/fuzz.sh links this instead of -lstb (FUZZ_STB=system links the shared library). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
