# gimp-sd: one non-recursive Makefile for the engine (sdcore), its CLI (sd), the GIMP plug-in
# and the tests.  Everything is built out of tree into $(B)/.  `make help` lists the targets.
#
# Sources are discovered by directory, so adding a file needs no edit here:
#   sdcore/*.c sdcore/kernels/*.c  -> $(B)/libsdcore.a   (no GIMP/glib headers allowed)
#   sdcore/cli/*.c                 -> $(B)/sd
#   tests/t_*.c                    -> $(B)/tests/t_*     (each linked with libsdcore.a)
# Kernel files named sdcore/kernels/x86_avx2*.c / x86_avx512*.c / x86_avx512bf16*.c get that
# ISA's flags and nothing else does; sdcore/kernels/ref.c is compiled without FP contraction.

B        ?= build
CC       ?= gcc
CFLAGS   ?= -O2 -g
WERROR   ?=
ifneq ($(V),1)
Q := @
endif

SD_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes $(WERROR) \
              -Isdcore -MMD -MP -pthread
SD_LIBS    := -lopenblas -lutf8proc -lpng -lm -pthread
# The reference kernels are the numerical truth: no contraction of a*b+c into FMA there.
REF_FLAGS  := -ffp-contract=off
AVX2_FLAGS := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
AVX512BF16_FLAGS := $(AVX512_FLAGS) -mavx512bf16

SDCORE_SRC := $(sort $(wildcard sdcore/*.c sdcore/kernels/*.c))
SDCORE_OBJ := $(SDCORE_SRC:%.c=$(B)/%.o) $(B)/sdcore/vocab_blob.o
CLI_SRC    := $(sort $(wildcard sdcore/cli/*.c))
CLI_OBJ    := $(CLI_SRC:%.c=$(B)/%.o)
TEST_SRC   := $(sort $(wildcard tests/t_*.c))
TEST_BIN   := $(TEST_SRC:tests/%.c=$(B)/tests/%)

# all: the engine library, the sd command-line tool and the unit-test binaries
all: $(B)/libsdcore.a $(B)/sd $(TEST_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) $(SD_CFLAGS) $(ISA_FLAGS) -c -o $@ $<

$(B)/sdcore/kernels/ref.o: ISA_FLAGS := $(REF_FLAGS)
$(filter $(B)/sdcore/kernels/x86_avx2%,$(SDCORE_OBJ)): ISA_FLAGS := $(AVX2_FLAGS)
$(filter $(B)/sdcore/kernels/x86_avx512%,$(SDCORE_OBJ)): ISA_FLAGS := $(AVX512_FLAGS)
$(filter $(B)/sdcore/kernels/x86_avx512bf16%,$(SDCORE_OBJ)): ISA_FLAGS := $(AVX512BF16_FLAGS)

# The CLIP BPE vocabulary (MIT, see sdcore/data/LICENSE-CLIP) is embedded in the library.
$(B)/sdcore/vocab.txt: sdcore/data/bpe_simple_vocab_16e6.txt.gz
	@mkdir -p $(dir $@)
	$(Q)gzip -dc $< > $@
$(B)/sdcore/vocab_blob.o: sdcore/data/vocab_blob.S $(B)/sdcore/vocab.txt
	@echo "  AS    $<"
	$(Q)$(CC) -c -o $@ -DVOCAB_PATH='"$(B)/sdcore/vocab.txt"' $<

$(B)/libsdcore.a: $(SDCORE_OBJ)
	@echo "  AR    $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/sd: $(CLI_OBJ) $(B)/libsdcore.a
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(B)/libsdcore.a $(SD_LIBS)

$(B)/tests/%: $(B)/tests/%.o $(B)/libsdcore.a
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(B)/libsdcore.a $(SD_LIBS)

# check: build everything and run every unit, golden and integration test
check: all
	$(Q)tests/run-unit-tests.sh $(B)
	$(Q)$(CHECK_GIMP)

# asan: build into build-asan/ with AddressSanitizer + UBSan and run the unit tests there
asan:
	$(Q)$(MAKE) --no-print-directory B=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check

# tsan: run the thread tests (t_pool, t_ops, t_threads) under ThreadSanitizer in build-tsan/
#       (the pool, the ops on 1-2 threads, cancellation, two ctxs sharing a model)
TSAN_TESTS := t_pool t_ops t_threads
tsan:
	$(Q)$(MAKE) --no-print-directory B=build-tsan \
	  CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" \
	  $(TSAN_TESTS:%=build-tsan/tests/%)
	$(Q)TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" tests/run-unit-tests.sh build-tsan

# random-models: full-size checkpoints with random weights for benchmarks (about 2 GB each,
#       never built by all/check): $(B)/models/<arch>-random-<dtype>.safetensors for arch
#       sd15|sd15-inpaint|sd21 and dtype f16|bf16|f32; this target builds the three f16 ones
RANDOM_MODELS := $(foreach a,sd15 sd15-inpaint sd21,$(B)/models/$(a)-random-f16.safetensors)
random-models: $(RANDOM_MODELS)
$(B)/models/%.safetensors: | $(B)/sd
	@mkdir -p $(dir $@)
	$(Q)$(B)/sd make-random-model --arch $(word 1,$(subst -random-, ,$*)) \
	  --dtype $(word 2,$(subst -random-, ,$*)) -o $@

# bench: time the networks and whole runs on full-size random checkpoints (made once into
#       $(B)/models/) with `sd bench`; prints the table and writes $(B)/bench.json.  Takes
#       minutes: BENCH_ARGS="--only KEY,... --repeats N" narrows it (sd bench --list)
BENCH_ARGS ?=
bench: $(B)/sd $(B)/models/sd15-random-f16.safetensors $(B)/models/sd21-random-f16.safetensors
	$(Q)$(B)/sd bench --models $(B)/models --json $(B)/bench.json $(BENCH_ARGS)

# fuzz: build the libFuzzer targets tests/fuzz/fuzz_*.c with clang, ASan and UBSan into
#       build-fuzz/ and run each for FUZZ_SECONDS (default 60) on its seed corpus; fails on
#       any crash (reproducers land in build-fuzz/fuzz/artifacts/)
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	$(Q)$(MAKE) --no-print-directory B=build-fuzz CC=clang \
	  CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" fuzz-build
	$(Q)tests/fuzz/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)
fuzz-build: $(FUZZ_BIN)
$(B)/fuzz/%: tests/fuzz/%.c $(B)/libsdcore.a
	@mkdir -p $(dir $@)
	@echo "  FUZZ  $@"
	$(Q)$(CC) $(CFLAGS) $(SD_CFLAGS) -fsanitize=fuzzer -o $@ $< $(filter %.o,$^) \
	  $(B)/libsdcore.a $(SD_LIBS) $(FUZZ_LIBS)
# the CLI's PNG reader is not part of the library: its target links it, and zlib (CRCs)
$(B)/fuzz/fuzz_cli_png: $(B)/sdcore/cli/image_png.o
$(B)/fuzz/fuzz_cli_png: FUZZ_LIBS := -lz

# clean: remove every build folder
clean:
	rm -rf build build-asan build-fuzz build-tsan

# help: list the targets
help:
	@grep -E '^# [a-z-]+:' Makefile | sed 's/^# /  /'

# ---- GIMP plug-in (plugin/, ui/) -----------------------------------------------------------
# plugin/*.c ui/*.c -> $(B)/gimp-sd (the only code that includes libgimp; ui/ holds the
# dialogs), linked with libsdcore.a.  Built when pkg-config finds libgimp2.0-dev.
# `make install` copies it and the help pages (ui/help/) to
# $(GIMP2_DIRECTORY)/plug-ins/gimp-sd/: GIMP2_DIRECTORY as GIMP reads it (absolute, or
# relative to $HOME), default $XDG_CONFIG_HOME/GIMP/2.10 (~/.config/GIMP/2.10), the folder
# `gimptool-2.0 --install-bin` uses.  `make check` then runs the GIMP batch tests and, with
# Xvfb and xdotool, the GUI tests (undo, dialogs) in an isolated profile under
# $(B)/gimp-tests (tests/gimp/run-gimp-tests.sh).
PLUGIN_PKGS := gimp-2.0 gimpui-2.0 gegl-0.4
PLUGIN_OK   := $(shell pkg-config --exists $(PLUGIN_PKGS) 2>/dev/null && echo yes)
GIMP2_DIRECTORY ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/GIMP/2.10
GIMP_PROFILE := $(if $(filter /%,$(GIMP2_DIRECTORY)),$(GIMP2_DIRECTORY),$(HOME)/$(GIMP2_DIRECTORY))
PLUGIN_DEST := $(GIMP_PROFILE)/plug-ins/gimp-sd

ifeq ($(PLUGIN_OK),yes)
PLUGIN_SRC    := $(sort $(wildcard plugin/*.c ui/*.c))
PLUGIN_OBJ    := $(PLUGIN_SRC:%.c=$(B)/%.o)
# (-isystem: GTK 2's headers do not pass -Wstrict-prototypes)
PLUGIN_CFLAGS := -DGLIB_DISABLE_DEPRECATION_WARNINGS -Iplugin -Iui \
                 $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PLUGIN_PKGS)))
PLUGIN_HELP   := $(wildcard ui/help/*/*)
PLUGIN_LIBS   := $(shell pkg-config --libs $(PLUGIN_PKGS))
CHECK_GIMP    := tests/gimp/run-gimp-tests.sh $(B)

all: $(B)/gimp-sd

$(PLUGIN_OBJ): $(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) $(SD_CFLAGS) $(PLUGIN_CFLAGS) -c -o $@ $<

$(B)/gimp-sd: $(PLUGIN_OBJ) $(B)/libsdcore.a
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $(PLUGIN_OBJ) $(B)/libsdcore.a $(PLUGIN_LIBS) $(SD_LIBS)

# install: copy the plug-in into the user's GIMP plug-ins folder (see GIMP2_DIRECTORY above)
# The profile must exist: GIMP sets up a profile (brushes, gradients, ...) only when its
# folder is missing, so creating it here would leave a broken one.
install: $(B)/gimp-sd
	@test -d "$(GIMP_PROFILE)" || { echo "gimp-sd: the GIMP profile $(GIMP_PROFILE) does not \
	exist yet: start GIMP once (e.g. gimp-console-2.10 -i -b '(gimp-quit 0)'), then install"; \
	exit 1; }
	install -d "$(PLUGIN_DEST)"
	install -m 0755 $(B)/gimp-sd "$(PLUGIN_DEST)/gimp-sd"
	for f in $(PLUGIN_HELP:ui/%=%); do \
	  install -D -m 0644 "ui/$$f" "$(PLUGIN_DEST)/$$f" || exit 1; done

# uninstall: remove the plug-in from that folder
uninstall:
	rm -rf "$(PLUGIN_DEST)"
else
CHECK_GIMP := echo "gimp: cannot run the GIMP tests: pkg-config finds no $(PLUGIN_PKGS) (run tools/install-deps.sh)"; exit 1

install uninstall:
	@echo "gimp-sd: pkg-config finds no $(PLUGIN_PKGS): install libgimp2.0-dev"; exit 1
endif
.PHONY: install uninstall

.PHONY: all check asan tsan random-models bench fuzz fuzz-build clean help
.SECONDARY:
-include $(shell find $(B) -name '*.d' 2>/dev/null)
