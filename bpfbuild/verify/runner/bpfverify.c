// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bpfverify: load each program of a BPF object in the running kernel, one at
 * a time, through libbpf, and report what the verifier said.
 *
 * It is linked statically (-lbpf -lelf -lz) so that it runs anywhere, e.g. in
 * a minimal VM or initramfs without Python. It prints JSON lines on stdout:
 *
 *   {"kind":"runner", ...}     first line: kernel, privilege probe (its errno,
 *                              capabilities, euid)
 *   {"kind":"object", ...}     the object's maps (sizes as loaded) and struct_ops
 *                              maps (the kernel type each implements, whether the
 *                              kernel's BTF has it, the programs it references)
 *   {"kind":"program", ...}    one line per program, in object order
 *   {"kind":"done", ...}       last line: counts
 *   {"kind":"error", ...}      instead of the rest, when the run cannot start
 *
 * and writes each program's verifier log to <log-dir>/<program>.log, followed
 * by libbpf's own messages (lines starting with "libbpf: ").
 *
 * It decides nothing: bpfbuild (bpfbuild/verify/log.py, run.py) reads these
 * facts and logs and tells a rejection from a kernel that lacks support.
 *
 * Each program is loaded on its own, in a fresh bpf_object with the others'
 * autoload off. libbpf (1.4+) ties a struct_ops program's autoload to the
 * struct_ops maps that reference it, so for a struct_ops program only one map
 * that references it is created, with every other callback slot emptied, and
 * the other struct_ops maps are not created; for any other program no
 * struct_ops map is created. A struct_ops map is never updated or attached:
 * nothing is registered in the kernel (no scheduler, no congestion control).
 *
 * Usage: bpfverify --log-dir DIR [--set NAME=VALUE]... [--max-entries MAP=N]...
 *                  [--log-size BYTES] [--log-level N] OBJECT
 * Exit status: 0 when every program was tried (whatever the verdicts),
 *              2 on a usage error or an object that cannot be opened.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/capability.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#ifndef CAP_BPF
#define CAP_BPF 39 /* Linux 5.8; older uapi headers lack it */
#endif

#define OUTPUT_FORMAT 2 /* bumped when the JSON lines change incompatibly */
#define LOG_LEVEL_STATS 4 /* BPF_LOG_STATS: "processed N insns ..." */
#define LOG_LEVEL_REJECTED (1 | 2 | 4) /* the whole trace, on rejection */
#define DEFAULT_LOG_SIZE (16u << 20)
#define MAX_SETS 64
#define DEFAULT_MAX_ENTRIES 1 /* a map the loader sizes at run time (0 in the object) */
#define STRUCT_OPS_VALUE_PREFIX "bpf_struct_ops_" /* the kernel's wrapper of each type */

struct rodata_set {
	const char *name;
	long long value;
};

struct map_size {
	const char *name;
	unsigned long long max_entries;
};

struct options {
	const char *object_path;
	const char *log_dir;
	size_t log_size;
	unsigned int rejected_log_level;
	struct rodata_set sets[MAX_SETS];
	int set_count;
	struct map_size sizes[MAX_SETS];
	int size_count;
};

/* ------------------------------------------------------------------ */
/* JSON output: strings escaped, one object per line                   */
/* ------------------------------------------------------------------ */

static void json_string(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_key_string(const char *key, const char *value)
{
	printf(",\"%s\":", key);
	json_string(value);
}

static void json_key_long(const char *key, long long value)
{
	printf(",\"%s\":%lld", key, value);
}

static void json_key_bool(const char *key, bool value)
{
	printf(",\"%s\":%s", key, value ? "true" : "false");
}

/* A fatal error: one "error" line, then exit status 2. */
static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char message[1024];
	va_list args;

	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	printf("{\"kind\":\"error\"");
	json_key_string("message", message);
	printf("}\n");
	exit(2);
}

/* ------------------------------------------------------------------ */
/* libbpf's messages: captured per open, all levels for the log file,  */
/* warnings and infos for the JSON line                                */
/* ------------------------------------------------------------------ */

struct text {
	char *buf;
	size_t len;
	size_t cap;
};

static struct text libbpf_all, libbpf_warnings;

static void text_append(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *buf = realloc(t->buf, cap);

		if (!buf)
			return; /* out of memory: drop the message, keep going */
		t->buf = buf;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void text_clear(struct text *t)
{
	t->len = 0;
	if (t->buf)
		t->buf[0] = '\0';
}

static int capture_libbpf(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char line[4096];
	int n = vsnprintf(line, sizeof(line), fmt, args);

	if (n < 0)
		return n;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	text_append(&libbpf_all, line, n);
	if (level != LIBBPF_DEBUG)
		text_append(&libbpf_warnings, line, n);
	return n;
}

/* ------------------------------------------------------------------ */
/* Privilege and kernel facts                                          */
/* ------------------------------------------------------------------ */

/* Load a two-instruction socket filter: EPERM means no BPF privilege. */
static int probe_bpf_load(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "bpfverify_probe", "GPL",
			       insns, 2, NULL);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static bool has_capability(int cap)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { 0 };

	if (syscall(SYS_capget, &header, data))
		return false;
	return data[cap / 32].effective & (1u << (cap % 32));
}

/* Programs loaded in the whole kernel, or -1 when we may not list them. */
static long long count_loaded_programs(void)
{
	__u32 id = 0;
	long long count = 0;

	while (!bpf_prog_get_next_id(id, &id))
		count++;
	return errno == ENOENT ? count : -1;
}

/* ------------------------------------------------------------------ */
/* Globals in .rodata: --set NAME=VALUE before each load               */
/* ------------------------------------------------------------------ */

static struct bpf_map *find_rodata_map(struct bpf_object *obj)
{
	const char *suffix = ".rodata";
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		const char *name = bpf_map__name(map);
		size_t len = strlen(name);

		if (bpf_map__is_internal(map) && len >= strlen(suffix) &&
		    !strcmp(name + len - strlen(suffix), suffix))
			return map;
	}
	return NULL;
}

static void write_integer(void *dst, unsigned int size, const struct rodata_set *set)
{
	long long v = set->value;
	bool fits;

	switch (size) {
	case 1: fits = v >= INT8_MIN && v <= UINT8_MAX; break;
	case 2: fits = v >= INT16_MIN && v <= UINT16_MAX; break;
	case 4: fits = v >= INT32_MIN && v <= UINT32_MAX; break;
	case 8: fits = true; break;
	default:
		fail("cannot set '%s': it is %u bytes long, only integers of 1, 2, 4 or 8 bytes can be set",
		     set->name, size);
	}
	if (!fits)
		fail("cannot set '%s' to %lld: it does not fit in %u bytes", set->name, v, size);
	/* Native byte order: the runner runs on the kernel it verifies for. */
	switch (size) {
	case 1: { __u8 x = v; memcpy(dst, &x, 1); break; }
	case 2: { __u16 x = v; memcpy(dst, &x, 2); break; }
	case 4: { __u32 x = v; memcpy(dst, &x, 4); break; }
	case 8: { __u64 x = v; memcpy(dst, &x, 8); break; }
	}
}

/* Write each --set into the .rodata image, sized by the BTF DATASEC. */
static void apply_rodata_sets(struct bpf_object *obj, const struct options *opts)
{
	const struct btf_type *datasec;
	struct bpf_map *map;
	struct btf *btf;
	size_t image_size;
	char *image;
	int sec_id;

	if (!opts->set_count)
		return;
	map = find_rodata_map(obj);
	btf = bpf_object__btf(obj);
	sec_id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
	if (!map || sec_id < 0)
		fail("cannot set '%s': %s has no .rodata variables (declare them `const volatile`, compile with -g)",
		     opts->sets[0].name, opts->object_path);
	datasec = btf__type_by_id(btf, sec_id);
	/* libbpf hands out the image it will copy into the map at load time. */
	image = (char *)bpf_map__initial_value(map, &image_size);

	for (int i = 0; i < opts->set_count; i++) {
		const struct rodata_set *set = &opts->sets[i];
		const struct btf_var_secinfo *var = btf_var_secinfos(datasec);
		char known[1024] = "";
		bool found = false;

		for (int j = 0; j < btf_vlen(datasec); j++, var++) {
			const struct btf_type *t = btf__type_by_id(btf, var->type);
			const char *name = btf__name_by_offset(btf, t->name_off);

			if (strcmp(name, set->name)) {
				if (strlen(known) + strlen(name) + 3 < sizeof(known))
					strcat(strcat(known, known[0] ? ", " : ""), name);
				continue;
			}
			if (var->offset + var->size > image_size)
				fail("cannot set '%s': outside the .rodata image", set->name);
			write_integer(image + var->offset, var->size, set);
			found = true;
			break;
		}
		if (!found)
			fail("no variable '%s' in .rodata of %s (it has: %s)", set->name,
			     opts->object_path, known[0] ? known : "none");
	}
}

/* ------------------------------------------------------------------ */
/* Map sizes: --max-entries MAP=N, and 1 for a map left at 0            */
/* ------------------------------------------------------------------ */

/* Map types whose max_entries must stay 0, or that libbpf sizes itself. */
static bool keeps_zero_max_entries(enum bpf_map_type type)
{
	switch (type) {
	case BPF_MAP_TYPE_PERF_EVENT_ARRAY: /* libbpf: one slot per possible CPU */
	case BPF_MAP_TYPE_STRUCT_OPS: /* libbpf: one value */
	case BPF_MAP_TYPE_CGROUP_STORAGE: /* the kernel refuses anything but 0 */
	case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
	case BPF_MAP_TYPE_SK_STORAGE:
	case BPF_MAP_TYPE_INODE_STORAGE:
	case BPF_MAP_TYPE_TASK_STORAGE:
	case BPF_MAP_TYPE_CGRP_STORAGE:
		return true;
	default:
		return false;
	}
}

/* Whether the runner sized this map itself: 0 in the object, not given a size. */
static bool defaults_max_entries(const struct bpf_map *map, const struct options *opts)
{
	for (int i = 0; i < opts->size_count; i++)
		if (!strcmp(opts->sizes[i].name, bpf_map__name(map)))
			return false;
	return !bpf_map__is_internal(map) && bpf_map__max_entries(map) == 0 &&
	       !keeps_zero_max_entries(bpf_map__type(map));
}

/* Apply --max-entries, then DEFAULT_MAX_ENTRIES to maps the loader sizes at run time. */
static void apply_map_sizes(struct bpf_object *obj, const struct options *opts)
{
	struct bpf_map *map;

	for (int i = 0; i < opts->size_count; i++) {
		const struct map_size *size = &opts->sizes[i];
		char known[1024] = "";

		map = bpf_object__find_map_by_name(obj, size->name);
		if (map && !bpf_map__is_internal(map)) {
			if (bpf_map__set_max_entries(map, size->max_entries))
				fail("cannot set max_entries of map '%s' to %llu", size->name,
				     size->max_entries);
			continue;
		}
		bpf_object__for_each_map(map, obj) {
			const char *name = bpf_map__name(map);

			if (bpf_map__is_internal(map) || strlen(known) + strlen(name) + 3 >= sizeof(known))
				continue;
			strcat(strcat(known, known[0] ? ", " : ""), name);
		}
		fail("no map '%s' in %s (it has: %s)", size->name, opts->object_path,
		     known[0] ? known : "none");
	}
	bpf_object__for_each_map(map, obj)
		if (defaults_max_entries(map, opts))
			bpf_map__set_max_entries(map, DEFAULT_MAX_ENTRIES);
}

/* ------------------------------------------------------------------ */
/* struct_ops maps: the kernel type each implements, its callbacks     */
/* ------------------------------------------------------------------ */

/* The struct a struct_ops map implements, without a ___flavor suffix. */
static void struct_ops_type_name(struct bpf_object *obj, const struct bpf_map *map, char *name,
				 size_t size)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_type *t = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
	const char *full = t ? btf__name_by_offset(btf, t->name_off) : "";
	const char *flavor = strstr(full, "___");

	snprintf(name, size, "%.*s", flavor ? (int)(flavor - full) : (int)strlen(full), full);
}

/*
 * The callback slots of a struct_ops map: libbpf (1.3+) keeps in the map's
 * initial value a pointer to the struct bpf_program of each function pointer
 * member (its "shadow type"). Calls visit(slot, data) for each such slot.
 */
static void for_each_callback_slot(struct bpf_object *obj, struct bpf_map *map,
				   void (*visit)(struct bpf_program **slot, void *data), void *data)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_type *t = btf__type_by_id(btf, bpf_map__btf_value_type_id(map));
	const struct btf_member *member;
	size_t value_size;
	char *value = bpf_map__initial_value(map, &value_size);

	if (!t || !value || !btf_is_struct(t))
		return;
	member = btf_members(t);
	for (int i = 0; i < btf_vlen(t); i++, member++) {
		const struct btf_type *mt = btf__type_by_id(btf, btf__resolve_type(btf, member->type));
		size_t offset = btf_member_bit_offset(t, i) / 8;

		if (!mt || !btf_is_ptr(mt) || offset + sizeof(void *) > value_size)
			continue;
		mt = btf__type_by_id(btf, btf__resolve_type(btf, mt->type));
		if (mt && btf_is_func_proto(mt))
			visit((struct bpf_program **)(value + offset), data);
	}
}

struct slot_search {
	const struct bpf_program *prog;
	bool found;
};

static void find_slot(struct bpf_program **slot, void *data)
{
	struct slot_search *search = data;

	if (*slot && *slot == search->prog)
		search->found = true;
}

static void empty_other_slots(struct bpf_program **slot, void *data)
{
	if (*slot != data)
		*slot = NULL;
}

static bool references(struct bpf_object *obj, struct bpf_map *map, const struct bpf_program *prog)
{
	struct slot_search search = { prog, false };

	for_each_callback_slot(obj, map, find_slot, &search);
	return search.found;
}

/*
 * Make `chosen` loadable on its own. For a struct_ops program: create only the
 * first struct_ops map that references it, with its other callback slots
 * emptied (libbpf then loads only `chosen`, with the kernel type and member it
 * implements as attach BTF id and expected attach type); for any other program:
 * create no struct_ops map (libbpf would otherwise load their programs too, and
 * a kernel without the struct_ops type would fail every program of the object).
 */
static void isolate_struct_ops(struct bpf_object *obj, struct bpf_program *chosen)
{
	bool is_struct_ops = bpf_program__type(chosen) == BPF_PROG_TYPE_STRUCT_OPS;
	struct bpf_map *map, *owner = NULL;

	bpf_object__for_each_map(map, obj) {
		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		if (is_struct_ops && !owner && references(obj, map, chosen)) {
			owner = map;
			for_each_callback_slot(obj, map, empty_other_slots, chosen);
			bpf_map__set_autocreate(map, true);
		} else {
			bpf_map__set_autocreate(map, false);
		}
	}
}

/* The kernel's BTF: vmlinux, then each module's, loaded once when first needed. */
struct kernel_btf {
	struct btf *vmlinux;
	bool vmlinux_tried;
};

/* Whether struct `name` is in the kernel's BTF: 1 yes, 0 no, -1 no BTF to tell. */
static int kernel_has_struct(struct kernel_btf *kernel, const char *name)
{
	DIR *modules;
	struct dirent *entry;
	int found = 0;

	if (!kernel->vmlinux_tried) {
		kernel->vmlinux_tried = true;
		kernel->vmlinux = btf__load_vmlinux_btf(); /* NULL: no BTF to tell */
	}
	if (!kernel->vmlinux)
		return -1;
	if (btf__find_by_name_kind(kernel->vmlinux, name, BTF_KIND_STRUCT) >= 0)
		return 1;
	modules = opendir("/sys/kernel/btf");
	if (!modules)
		return 0;
	while (!found && (entry = readdir(modules))) {
		char path[PATH_MAX];
		struct btf *module;

		if (entry->d_name[0] == '.' || !strcmp(entry->d_name, "vmlinux"))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/btf/%s", entry->d_name);
		module = btf__parse_split(path, kernel->vmlinux);
		if (!module)
			continue;
		found = btf__find_by_name_kind(module, name, BTF_KIND_STRUCT) >= 0;
		btf__free(module);
	}
	closedir(modules);
	return found;
}

static void json_key_presence(const char *key, int presence)
{
	if (presence < 0)
		printf(",\"%s\":null", key);
	else
		json_key_bool(key, presence);
}

static void list_callback(struct bpf_program **slot, void *data)
{
	bool *first = data;

	if (!*slot)
		return;
	printf("%s", *first ? "" : ",");
	json_string(bpf_program__name(*slot));
	*first = false;
}

/*
 * The "object" line: each map as it will be loaded (its size given, defaulted
 * or from the object) and each struct_ops map with the kernel type it
 * implements, whether the kernel's BTF has that type and its bpf_struct_ops_
 * wrapper, and the programs in its callback slots. Applies the map sizes.
 */
static void print_object_facts(struct bpf_object *obj, const struct options *opts)
{
	struct kernel_btf kernel = {};
	struct bpf_map *map;
	bool defaulted[1024] = {}, first = true;
	int i = 0;

	bpf_object__for_each_map(map, obj)
		if (i < 1024)
			defaulted[i++] = defaults_max_entries(map, opts);
	apply_map_sizes(obj, opts);
	printf("{\"kind\":\"object\",\"maps\":[");
	i = 0;
	bpf_object__for_each_map(map, obj) {
		bool was_defaulted = i < 1024 && defaulted[i];

		i++;
		if (bpf_map__is_internal(map))
			continue;
		printf("%s{", first ? "" : ",");
		first = false;
		json_string("name");
		putchar(':');
		json_string(bpf_map__name(map));
		json_key_string("type", libbpf_bpf_map_type_str(bpf_map__type(map)));
		json_key_bool("defaulted", was_defaulted);
		json_key_long("max_entries", bpf_map__max_entries(map));
		putchar('}');
	}
	printf("],\"struct_ops\":[");
	first = true;
	bpf_object__for_each_map(map, obj) {
		char type[256], wrapper[256 + sizeof(STRUCT_OPS_VALUE_PREFIX)];
		bool first_callback = true;

		if (bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
			continue;
		struct_ops_type_name(obj, map, type, sizeof(type));
		snprintf(wrapper, sizeof(wrapper), "%s%s", STRUCT_OPS_VALUE_PREFIX, type);
		printf("%s{", first ? "" : ",");
		first = false;
		json_string("map");
		putchar(':');
		json_string(bpf_map__name(map));
		json_key_string("type", type);
		json_key_presence("in_kernel", kernel_has_struct(&kernel, type));
		json_key_presence("wrapper_in_kernel", kernel_has_struct(&kernel, wrapper));
		printf(",\"programs\":[");
		for_each_callback_slot(obj, map, list_callback, &first_callback);
		printf("]}");
	}
	printf("]}\n");
	btf__free(kernel.vmlinux);
}

/* ------------------------------------------------------------------ */
/* Loading one program                                                 */
/* ------------------------------------------------------------------ */

/*
 * Open the object afresh and mark only program number `index` for loading, so
 * that each load is independent of the others. Returns the program.
 */
static struct bpf_program *open_one_program(const struct options *opts, int index,
					    struct bpf_object **objp)
{
	struct bpf_program *prog, *chosen = NULL;
	struct bpf_object *obj;
	int i = 0;

	text_clear(&libbpf_all);
	text_clear(&libbpf_warnings);
	obj = bpf_object__open_file(opts->object_path, NULL);
	if (!obj)
		fail("cannot open %s: %s%s", opts->object_path, strerror(errno),
		     libbpf_warnings.len ? libbpf_warnings.buf : "");
	apply_rodata_sets(obj, opts);
	apply_map_sizes(obj, opts);
	bpf_object__for_each_program(prog, obj) {
		if (i++ == index)
			chosen = prog;
		else
			bpf_program__set_autoload(prog, false);
	}
	isolate_struct_ops(obj, chosen);
	*objp = obj;
	return chosen;
}

/* Load with the given log level into log_buf; 0 or a negative errno. */
static int load_with_log(struct bpf_object *obj, struct bpf_program *prog,
			 unsigned int log_level, char *log_buf, size_t log_size)
{
	log_buf[0] = '\0';
	bpf_program__set_log_level(prog, log_level);
	bpf_program__set_log_buf(prog, log_buf, log_size);
	return bpf_object__load(obj);
}

static void write_log_file(const char *path, const char *verifier_log)
{
	FILE *f = fopen(path, "w");

	if (!f)
		fail("cannot write %s: %s", path, strerror(errno));
	fputs(verifier_log, f);
	if (verifier_log[0] && verifier_log[strlen(verifier_log) - 1] != '\n')
		fputc('\n', f);
	if (libbpf_all.len)
		fputs(libbpf_all.buf, f);
	fclose(f);
}

struct tally {
	int programs, loaded, failed, skipped;
};

/*
 * Verify program number `index`: a load with the stats log (level 4); on
 * failure a second, independent load with the full log (levels 1 and 2),
 * since that is what shows the failing instruction and its source line.
 */
static void verify_program(const struct options *opts, int index, bool privileged,
			   char *log_buf, struct tally *tally)
{
	struct bpf_prog_info info = {};
	__u32 info_len = sizeof(info);
	unsigned int log_level = LOG_LEVEL_STATS;
	struct bpf_program *prog;
	struct bpf_object *obj;
	char log_path[PATH_MAX];
	const char *outcome;
	int err = 0, log_err = 0;

	prog = open_one_program(opts, index, &obj);
	snprintf(log_path, sizeof(log_path), "%s/%s.log", opts->log_dir, bpf_program__name(prog));

	if (!privileged) {
		outcome = "skipped";
		tally->skipped++;
		log_path[0] = '\0';
	} else {
		err = load_with_log(obj, prog, log_level, log_buf, opts->log_size);
		if (!err) {
			outcome = "ok";
			tally->loaded++;
			bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &info_len);
		} else {
			outcome = "failed";
			tally->failed++;
			if (log_buf[0]) {
				/* The verifier ran: load again for its whole trace. */
				bpf_object__close(obj);
				prog = open_one_program(opts, index, &obj);
				log_level = opts->rejected_log_level;
				log_err = load_with_log(obj, prog, log_level, log_buf, opts->log_size);
			}
		}
		write_log_file(log_path, log_buf);
	}

	printf("{\"kind\":\"program\"");
	json_key_long("index", index);
	json_key_string("name", bpf_program__name(prog));
	json_key_string("section", bpf_program__section_name(prog));
	json_key_string("type", libbpf_bpf_prog_type_str(bpf_program__type(prog)));
	json_key_string("load", outcome);
	json_key_long("errno", -err);
	json_key_string("strerror", err ? strerror(-err) : "");
	json_key_long("log_level", log_level);
	json_key_string("log", log_path);
	/* ENOSPC on the second load: the log buffer kept only the tail. */
	json_key_bool("log_truncated", log_err == -ENOSPC);
	json_key_long("xlated_bytes", info.xlated_prog_len);
	json_key_long("jited_bytes", info.jited_prog_len);
	json_key_long("verified_insns", info.verified_insns);
	json_key_string("libbpf", libbpf_warnings.buf);
	printf("}\n");

	/* Closing the object closes every program and map fd: nothing stays loaded. */
	bpf_object__close(obj);
	tally->programs++;
}

/* ------------------------------------------------------------------ */
/* Command line and main                                               */
/* ------------------------------------------------------------------ */

static void parse_set(struct options *opts, char *arg)
{
	char *eq = strchr(arg, '='), *end;
	struct rodata_set *set;

	if (!eq || eq == arg || !eq[1])
		fail("--set expects NAME=VALUE, got '%s'", arg);
	if (opts->set_count == MAX_SETS)
		fail("too many --set options (at most %d)", MAX_SETS);
	*eq = '\0';
	set = &opts->sets[opts->set_count++];
	set->name = arg;
	errno = 0;
	/* Base 0: decimal, 0x hex; a leading '-' for negative values. */
	if (eq[1] == '-')
		set->value = strtoll(eq + 1, &end, 0);
	else
		set->value = (long long)strtoull(eq + 1, &end, 0);
	if (errno || *end)
		fail("--set %s: '%s' is not an integer (decimal or 0x hex)", arg, eq + 1);
}

static void parse_max_entries(struct options *opts, char *arg)
{
	char *eq = strchr(arg, '='), *end;
	struct map_size *size;

	if (!eq || eq == arg || !eq[1])
		fail("--max-entries expects MAP=N, got '%s'", arg);
	if (opts->size_count == MAX_SETS)
		fail("too many --max-entries options (at most %d)", MAX_SETS);
	*eq = '\0';
	size = &opts->sizes[opts->size_count++];
	size->name = arg;
	errno = 0;
	size->max_entries = strtoull(eq + 1, &end, 0);
	if (errno || *end || eq[1] == '-' || !size->max_entries || size->max_entries > UINT32_MAX)
		fail("--max-entries %s: '%s' is not a number from 1 to %u", arg, eq + 1, UINT32_MAX);
}

static void parse_args(int argc, char **argv, struct options *opts)
{
	static const struct option longopts[] = {
		{ "log-dir", required_argument, NULL, 'd' },
		{ "set", required_argument, NULL, 's' },
		{ "max-entries", required_argument, NULL, 'm' },
		{ "log-size", required_argument, NULL, 'z' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *usage = "usage: bpfverify --log-dir DIR [--set NAME=VALUE]... "
			    "[--max-entries MAP=N]... [--log-size BYTES] [--log-level N] OBJECT";
	int c;

	opts->log_size = DEFAULT_LOG_SIZE;
	opts->rejected_log_level = LOG_LEVEL_REJECTED;
	while ((c = getopt_long(argc, argv, "d:s:m:z:l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': opts->log_dir = optarg; break;
		case 's': parse_set(opts, optarg); break;
		case 'm': parse_max_entries(opts, optarg); break;
		case 'z': opts->log_size = strtoul(optarg, NULL, 0); break;
		case 'l': opts->rejected_log_level = strtoul(optarg, NULL, 0) | LOG_LEVEL_STATS; break;
		case 'h': puts(usage); exit(0);
		default: fail("%s", usage);
		}
	}
	if (optind != argc - 1 || !opts->log_dir)
		fail("%s", usage);
	if (opts->log_size < 4096 || opts->log_size > UINT_MAX / 4)
		fail("--log-size must be between 4096 and %u bytes", UINT_MAX / 4);
	opts->object_path = argv[optind];
}

int main(int argc, char **argv)
{
	static struct options opts;
	struct tally tally = {};
	struct bpf_object *obj;
	struct utsname uts;
	bool privileged;
	char *log_buf;
	int probe_err, count;

	/* Line-buffered: whoever reads us sees each verdict as it comes. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv, &opts);
	libbpf_set_print(capture_libbpf);

	/* First line: the kernel and whether we may load BPF at all. */
	uname(&uts);
	probe_err = probe_bpf_load();
	privileged = !probe_err && (has_capability(CAP_BPF) || has_capability(CAP_SYS_ADMIN));
	printf("{\"kind\":\"runner\"");
	json_key_long("format", OUTPUT_FORMAT);
	json_key_string("kernel", uts.release);
	json_key_string("machine", uts.machine);
	printf(",\"libbpf\":\"%u.%u\"", libbpf_major_version(), libbpf_minor_version());
	json_key_string("object", opts.object_path);
	json_key_bool("privileged", privileged);
	json_key_long("probe_errno", probe_err);
	json_key_long("euid", geteuid()); /* root with capabilities dropped is not "not root" */
	json_key_bool("cap_bpf", has_capability(CAP_BPF));
	json_key_bool("cap_sys_admin", has_capability(CAP_SYS_ADMIN));
	json_key_long("progs_loaded_before", count_loaded_programs());
	printf("}\n");

	/* Without privilege nothing is loaded and no log is written. */
	if (privileged && mkdir(opts.log_dir, 0755) && errno != EEXIST)
		fail("cannot create %s: %s", opts.log_dir, strerror(errno));
	log_buf = malloc(opts.log_size);
	if (!log_buf)
		fail("cannot allocate a %zu-byte log buffer", opts.log_size);

	/* Count the programs once, then verify each in its own fresh object. */
	obj = bpf_object__open_file(opts.object_path, NULL);
	if (!obj)
		fail("cannot open %s: %s%s", opts.object_path, strerror(errno),
		     libbpf_warnings.len ? libbpf_warnings.buf : "");
	apply_rodata_sets(obj, &opts);
	print_object_facts(obj, &opts);
	count = 0;
	{
		struct bpf_program *prog;

		bpf_object__for_each_program(prog, obj)
			count++;
	}
	bpf_object__close(obj);
	for (int i = 0; i < count; i++)
		verify_program(&opts, i, privileged, log_buf, &tally);

	printf("{\"kind\":\"done\"");
	json_key_long("programs", tally.programs);
	json_key_long("loaded", tally.loaded);
	json_key_long("failed", tally.failed);
	json_key_long("skipped", tally.skipped);
	json_key_long("progs_loaded_after", count_loaded_programs());
	printf("}\n");
	free(log_buf);
	return 0;
}
