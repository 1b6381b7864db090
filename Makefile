# turbo — build every stage into bin/, the tests into $(BUILD)/tests/.
#
#   make             build libraries, stages, tests (CUDA too when nvcc is present)
#   make test        build and run the default test suite (closing line: N passed, N failed, N skipped)
#   make test-long   longer checks (full-size corpus, long training)
#   make test-cuda   CUDA kernels against the CPU reference (skipped without a GPU)
#   make asan        build into build-asan/ with ASan+UBSan and run the tests there
#   make valgrind    the tests under valgrind memcheck (VALGRIND_FILTER=name to pick some)
#   make bench       benchmarks (bench/), tables on stdout
#   make fuzz        run the message fuzzer for FUZZ_SECONDS (default 60)
#
# Switches: NO_CUDA=1 (skip CUDA even when nvcc is found), BUILD=dir BIN=dir (separate trees),
# SAN=1 (sanitizers), OPT=-O0 (debug), ARCH= (CPU instruction set; default: this machine's,
# -march=native, since turbo is built where it runs), CUDA_ARCH=sm_90 (GPU architecture).

BUILD ?= build
BIN   ?= bin
OPT   ?= -O2
ARCH  ?= $(shell $(or $(CC),cc) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
SAN   ?= 0
NO_CUDA ?= 0
CUDA_ARCH ?= sm_90
CC    ?= gcc

.DEFAULT_GOAL := all
# Keep every object file: the chained rules would otherwise delete them as intermediates after
# each build, and the next change would recompile everything.
.SECONDARY:
# Build on every core unless the caller chose (-j on the command line wins).
NPROC := $(shell nproc 2>/dev/null || echo 2)
ifeq ($(filter -j%,$(MAKEFLAGS)),)
  MAKEFLAGS += -j$(NPROC)
endif
NONBUILD_GOALS := clean help distclean
ifeq ($(filter $(NONBUILD_GOALS),$(MAKECMDGOALS)),)
  DEPS_MSG := $(shell sh tools/ensure-deps.sh)
  $(info $(DEPS_MSG))
endif

PKGS := libzmq msgpack sqlite3 libavformat libavcodec libavutil libswscale
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# --- probes -----------------------------------------------------------------
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null)
ifneq ($(BLAS_LIBS),)
  HAVE_BLAS := 1
else
  HAVE_BLAS := 0
endif
HAVE_OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1 || echo 0)
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(NO_CUDA),1)
  NVCC :=
endif
ifneq ($(NVCC),)
  CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
  HAVE_CUDNN := $(shell test -f $(CUDA_HOME)/include/cudnn.h -o -f /usr/include/cudnn.h && echo 1 || echo 0)
  HAVE_NCCL  := $(shell test -f $(CUDA_HOME)/include/nccl.h -o -f /usr/include/nccl.h && echo 1 || echo 0)
  HAVE_CUDA := 1
else
  HAVE_CUDA := 0
  HAVE_CUDNN := 0
  HAVE_NCCL := 0
endif
ifeq ($(filter $(NONBUILD_GOALS),$(MAKECMDGOALS)),)
  $(info probe: blas=$(HAVE_BLAS) openmp=$(HAVE_OMP) nvcc=$(if $(NVCC),$(NVCC),none) cudnn=$(HAVE_CUDNN) nccl=$(HAVE_NCCL))
endif

# --- flags --------------------------------------------------------------------
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS  := -std=c11 $(OPT) $(ARCH) -g $(WARN) -D_GNU_SOURCE -I. $(PKG_CFLAGS) $(BLAS_CFLAGS) -MMD -MP -fno-strict-aliasing
LDLIBS  := $(PKG_LIBS) $(BLAS_LIBS) -lm -lpthread
ifeq ($(HAVE_OMP),1)
  CFLAGS += -fopenmp
  LDLIBS += -fopenmp
endif
ifeq ($(HAVE_BLAS),1)
  CFLAGS += -DTURBO_HAVE_BLAS=1
endif
ifeq ($(SAN),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=address,undefined
endif

COMMON_SRC  := $(sort $(wildcard common/*.c))
KERNEL_SRC  := $(sort $(wildcard kernels/*.c kernels/cpu/*.c kernels/nn/*.c kernels/vision/*.c kernels/world/*.c kernels/eval/*.c))
CUDA_SRC    := $(sort $(wildcard kernels/cuda/*.cu))
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/%.o)
KERNEL_OBJ  := $(KERNEL_SRC:%.c=$(BUILD)/%.o)
LIBCOMMON   := $(BUILD)/libturbo_common.a
LIBKERNELS  := $(BUILD)/libturbo_kernels.a

# CUDA: kernels/cuda/*.cu compile into their own archive; stages link it when nvcc exists and
# choose the device at run time (a CUDA build runs on the CPU when no GPU is present).
ifeq ($(HAVE_CUDA),1)
  CUDA_OBJ   := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
  LIBCUDA    := $(BUILD)/libturbo_cuda.a
  NVCCFLAGS  := -std=c++17 -O3 -g -I. -arch=$(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter -MMD -MP -DTURBO_HAVE_CUDA=1
  CFLAGS     += -DTURBO_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -lstdc++
  ifeq ($(HAVE_CUDNN),1)
    NVCCFLAGS += -DTURBO_HAVE_CUDNN=1
    CUDA_LIBS += -lcudnn
  endif
  ifeq ($(HAVE_NCCL),1)
    NVCCFLAGS += -DTURBO_HAVE_NCCL=1
    CFLAGS    += -DTURBO_HAVE_NCCL=1
    CUDA_LIBS += -lnccl
  endif
else
  CUDA_OBJ  :=
  LIBCUDA   :=
  CUDA_LIBS :=
endif

STAGES      := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard stages/*/*.c)))))
STAGE_BINS  := $(STAGES:%=$(BIN)/%)
TEST_SRC    := $(sort $(wildcard tests/test_*.c))
TEST_BINS   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC   := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
ALL_LIBS    := $(LIBKERNELS) $(LIBCUDA) $(LIBCOMMON)
LINK_LIBS   := $(LDLIBS) $(CUDA_LIBS)

.PHONY: all stages tests benches test test-long test-cuda asan valgrind bench bench-cuda fuzz clean help
all: stages tests benches

stages: $(STAGE_BINS)
tests: $(TEST_BINS)
benches: $(BENCH_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The catalogue compiles schemas/catalogue.sql into itself (.incbin), which -MMD cannot see.
$(BUILD)/common/catalogue.o: schemas/catalogue.sql

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBKERNELS): $(KERNEL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

ifeq ($(HAVE_CUDA),1)
$(LIBCUDA): $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
endif

# One executable per stage folder: every .c under stages/NAME/ links into bin/NAME.
stage_objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard stages/$(1)/*.c))
.SECONDEXPANSION:
$(BIN)/%: $$(call stage_objs,$$*) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(filter %.o,$^) $(ALL_LIBS) $(LINK_LIBS)

TESTUTIL_OBJ := $(BUILD)/tests/testutil.o
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTUTIL_OBJ) $(ALL_LIBS)
	$(CC) -o $@ $< $(TESTUTIL_OBJ) $(ALL_LIBS) $(LINK_LIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(TESTUTIL_OBJ) $(ALL_LIBS)
	$(CC) -o $@ $< $(TESTUTIL_OBJ) $(ALL_LIBS) $(LINK_LIBS)

# Fuzz target (libFuzzer + ASan/UBSan, clang): the message decoder and validator.
FUZZ_SECONDS ?= 60
$(BUILD)/fuzz/fuzz_msg: tests/fuzz/fuzz_msg.c $(COMMON_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -D_GNU_SOURCE -I. $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  -DTURBO_FUZZ=1 $^ -o $@ $(PKG_LIBS) -lm -lpthread

fuzz: $(BUILD)/fuzz/fuzz_msg
	mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_msg -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)/fuzz/corpus tests/fuzz/seeds

test: all
	BUILD=$(BUILD) BIN=$(BIN) sh tests/run.sh default

test-long: all
	BUILD=$(BUILD) BIN=$(BIN) sh tests/run.sh long

test-cuda: all
	BUILD=$(BUILD) BIN=$(BIN) sh tests/run.sh cuda

asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin SAN=1 OPT=-O1 NO_CUDA=1 all
	BUILD=build-asan BIN=build-asan/bin TURBO_ASAN=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 sh tests/run.sh default

# The compiled tests under valgrind (memcheck), in a build without CUDA (the CUDA runtime's
# loader trips memcheck): errors and definite leaks fail the test. Forked helper processes are
# not checked (--child-silent-after-fork); shell tests, the learning test and test_unet's
# finite-difference sweep are left to `make test` and `make asan`. Built for AVX2 (x86-64-v3):
# memcheck does not decode AVX-512.
VALGRIND_FILTER ?=
valgrind:
	$(MAKE) BUILD=build-valgrind BIN=build-valgrind/bin NO_CUDA=1 ARCH=-march=x86-64-v3 all
	BUILD=build-valgrind BIN=build-valgrind/bin TURBO_VALGRIND=1 TURBO_TEST_TIMEOUT=1800 \
	  TURBO_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --child-silent-after-fork=yes" \
	  sh tests/run.sh default $(VALGRIND_FILTER)

bench: all
	BUILD=$(BUILD) BIN=$(BIN) sh bench/run.sh cpu

bench-cuda: all
	BUILD=$(BUILD) BIN=$(BIN) sh bench/run.sh cuda

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

clean:
	rm -rf build build-asan build-valgrind bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
