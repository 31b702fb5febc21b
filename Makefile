# airlock — build, test, run. Plain make + pkg-config; see README.md.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc

PKGS    := libmicrohttpd libcurl libcjson yaml-0.1 libhs libsystemd
VERSION := 0.1.0

WARN    := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(CI),true)
WARN    += -Werror
endif
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -DAIRLOCK_VERSION='"$(VERSION)"' $(WARN) -Iinclude -Isrc \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
override LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

SRCS      := $(shell find src -name '*.c' ! -name main.c | sort)
OBJS      := $(SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-test run demo test unit integration asan valgrind fuzz bench install uninstall clean check-config

all: deps $(BUILD)/airlock
	@ln -sf $(BUILD)/airlock airlock

deps:
	@sh scripts/deps.sh build
deps-test:
	@sh scripts/deps.sh test

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libairlock.a: $(OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/airlock: $(BUILD)/src/main.o $(BUILD)/libairlock.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h $(BUILD)/libairlock.a
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libairlock.a $(LDLIBS)

run: all
	./$(BUILD)/airlock -c config/airlock.yaml

demo: all deps-test
	sh scripts/demo.sh

# The README's test command: unit tests, then the integration suite against
# the real binary. Ends with one "N passed, N failed" line.
test: deps-test all $(UNIT_BINS)
	@sh tests/run.sh $(BUILD)

unit: all $(UNIT_BINS)
	@UNIT_ONLY=1 sh tests/run.sh $(BUILD)

integration: all
	@INTEGRATION_ONLY=1 sh tests/run.sh $(BUILD)

# ASan + UBSan build of everything, then the whole suite against it.
asan:
	@sh scripts/deps.sh all
	$(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" test

valgrind: all
	@sh scripts/deps.sh all
	VALGRIND=1 INTEGRATION_ONLY=1 sh tests/run.sh $(BUILD)

fuzz:
	@sh scripts/deps.sh all
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	@sh scripts/deps.sh all
	bash bench/run.sh

check-config: all
	./$(BUILD)/airlock --check -c config/airlock.yaml

# The unit goes where systemd looks for a PREFIX's units (/usr/local/lib/systemd/system
# for the default), with ExecStart under PREFIX. /etc/airlock/airlock.yaml is
# installed only when there is none: an operator's config is never overwritten,
# nor removed by uninstall.
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: all
	install -D -m 0755 $(BUILD)/airlock $(DESTDIR)$(PREFIX)/bin/airlock
	install -D -m 0644 config/airlock.example.yaml $(DESTDIR)/etc/airlock/airlock.yaml.example
	[ -e $(DESTDIR)/etc/airlock/airlock.yaml ] || \
	  install -D -m 0640 config/airlock.example.yaml $(DESTDIR)/etc/airlock/airlock.yaml
	install -d $(DESTDIR)$(UNITDIR)
	sed 's#/usr/local/bin/airlock#$(PREFIX)/bin/airlock#' packaging/airlock.service \
	  > $(DESTDIR)$(UNITDIR)/airlock.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/airlock.service

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/airlock $(DESTDIR)$(UNITDIR)/airlock.service \
	  $(DESTDIR)/etc/airlock/airlock.yaml.example

clean:
	rm -rf build build-asan build-fuzz airlock

-include $(OBJS:.o=.d) $(BUILD)/src/main.d
