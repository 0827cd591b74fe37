# smtpkit build. `make` builds the command and the library; `make run` starts
# the server on the sample configuration; `make check` runs every test (unit,
# end-to-end, the same again under ASan+UBSan, and a short fuzz run).
# Both install missing Debian packages first when run as root.

SAN      ?= 0
PREFIX   ?= /usr/local
PYTHON   ?= /usr/bin/python3
FUZZ_SECONDS ?= 15
VERSION  := 0.1.0

ifeq ($(SAN),1)
CC       := clang
BUILD    ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g
else
CC       ?= cc
BUILD    ?= build/release
SANFLAGS := -O2 -g
endif

PKGS     := libevent_openssl libevent libssl libcrypto libconfig libcares libcrypt libargon2
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE -DSMTPKIT_VERSION='"$(VERSION)"'
CFLAGS   += -std=c11 $(WARN) -fPIC $(SANFLAGS)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lresolv -lpthread
# libsystemd (optional, libsystemd-dev): log = "journal" when present at build time
ifeq ($(shell pkg-config --exists libsystemd 2>/dev/null && echo yes),yes)
CPPFLAGS += -DSK_HAVE_LIBSYSTEMD
LDLIBS   += $(shell pkg-config --libs libsystemd)
endif

LIB_SRC  := $(sort $(wildcard src/core/*.c src/util/*.c src/store/*.c src/queue/*.c src/client/*.c src/server/*.c src/delivery/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

.PHONY: FORCE all deps deps-test deps-verify run check unit e2e fuzz fuzz-smoke lint format format-check install clean

all: $(BUILD)/smtpkit $(BUILD)/libsmtpkit.a $(BUILD)/libsmtpkit.so $(BUILD)/smtpkit.pc

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
# Every external program the tests call can do what they ask of it.
deps-verify: deps-test
	@PYTHON=$(PYTHON) scripts/deps-verify.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libsmtpkit.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libsmtpkit.so: $(LIB_OBJ)
	$(CC) $(CFLAGS) -shared -Wl,-soname,libsmtpkit.so.0 -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/smtpkit: $(CLI_OBJ) $(BUILD)/libsmtpkit.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsmtpkit.a $(LDFLAGS) $(LDLIBS)

# The .pc names PREFIX, which no file's date records: it is regenerated on
# every run and replaced only when its text changes (`make install
# PREFIX=/usr` after a plain `make` installs prefix=/usr), and nothing else
# depends on PREFIX, so a new PREFIX rebuilds no object.
$(BUILD)/smtpkit.pc: smtpkit.pc.in FORCE
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@ && echo "$@: prefix=$(PREFIX)"; fi

FORCE:

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libsmtpkit.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -o $@ $< $(BUILD)/libsmtpkit.a $(LDFLAGS) $(LDLIBS) -lcmocka

run: deps all
	$(BUILD)/smtpkit serve -c etc/smtpkit.conf

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

e2e: all
	SMTPKIT_BIN=$(CURDIR)/$(BUILD)/smtpkit $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

# The fuzz targets link the library built once with clang's fuzzer
# instrumentation (fuzzer-no-link) and ASan+UBSan.
FUZZ_FLAGS := -std=c11 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer
FUZZ_OBJ   := $(LIB_SRC:%.c=build/fuzz/obj/%.o)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build/fuzz/libsmtpkit-fuzz.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

build/fuzz/%: fuzz/%.c build/fuzz/libsmtpkit-fuzz.a
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libsmtpkit-fuzz.a $(LDLIBS)

fuzz: $(FUZZ_BIN)

fuzz-smoke: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  if $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 build/fuzz/corpus-$$n \
	       $$( [ -d fuzz/corpus/$$n ] && echo fuzz/corpus/$$n ) > build/fuzz/$$n.log 2>&1; then \
	    tail -n 1 build/fuzz/$$n.log; \
	  else tail -n 40 build/fuzz/$$n.log; echo "fuzz target $$n failed"; exit 1; fi; done

check: deps-verify
	scripts/check.sh

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr -Iinclude -Isrc -D__GNUC__ src
	$(MAKE) format-check

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/smtpkit $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(BUILD)/smtpkit $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libsmtpkit.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libsmtpkit.so $(DESTDIR)$(PREFIX)/lib/libsmtpkit.so.0
	ln -sf libsmtpkit.so.0 $(DESTDIR)$(PREFIX)/lib/libsmtpkit.so
	install -m 644 $(BUILD)/smtpkit.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 include/smtpkit/*.h $(DESTDIR)$(PREFIX)/include/smtpkit/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	-install -m 644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	# the configuration (SYSCONFDIR, default /etc; an existing one is kept)
	# and the systemd unit (UNITDIR, default PREFIX/lib/systemd/system)
	install -d $(DESTDIR)$(or $(SYSCONFDIR),/etc)/smtpkit $(DESTDIR)$(or $(UNITDIR),$(PREFIX)/lib/systemd/system)
	@if [ -e $(DESTDIR)$(or $(SYSCONFDIR),/etc)/smtpkit/smtpkit.conf ]; then echo "keeping the existing $(DESTDIR)$(or $(SYSCONFDIR),/etc)/smtpkit/smtpkit.conf"; \
	else echo "install -m 644 etc/install/smtpkit.conf $(DESTDIR)$(or $(SYSCONFDIR),/etc)/smtpkit/smtpkit.conf"; install -m 644 etc/install/smtpkit.conf $(DESTDIR)$(or $(SYSCONFDIR),/etc)/smtpkit/smtpkit.conf; fi
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(or $(SYSCONFDIR),/etc)|g' etc/install/smtpkit.service.in > $(DESTDIR)$(or $(UNITDIR),$(PREFIX)/lib/systemd/system)/smtpkit.service
	chmod 644 $(DESTDIR)$(or $(UNITDIR),$(PREFIX)/lib/systemd/system)/smtpkit.service

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
