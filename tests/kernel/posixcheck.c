/*
 * POSIX semantics sweep for the cifs.ko guest tests: runs the same checks in a directory of a local tmpfs (the
 * reference: what Linux does) and of a `vers=3.1.1,posix` mount, and prints what happened, one line per check:
 *
 *   CHECK <name> <result>
 *
 * The result is an observation (ok, an errno name, a mode in octal, a link count, file content), never a verdict:
 * tests/kernel/test_cifs_posix_sweep.py compares the two runs. The checks are those of pjdfstest and the xfstests
 * generic tests that one unprivileged user can make.
 *
 *   posixcheck DIR [UID GID]   chdir to DIR (which must be empty and writable), drop to UID/GID if given, run
 *
 * Built with gcc -static by tests/kernel/image.py.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define BIG_DIR_COUNT 300
#define UNLINK_DIR_COUNT 1000

static void report(const char *name, const char *fmt, ...)
{
	va_list args;

	printf("CHECK %s ", name);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	putchar('\n');
	fflush(stdout);
}

/* The same line built piece by piece: each piece is evaluated in its own statement, in order (the order in which
 * a function's arguments are evaluated is unspecified, and most checks act and then observe). */
static void begin(const char *name)
{
	printf("CHECK %s ", name);
}

static void add(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
}

static void end(void)
{
	putchar('\n');
	fflush(stdout);
}

/* "ok" for a call that returned >= 0, else the errno's name (EEXIST, ...). */
static const char *rc(long result)
{
	const char *name;

	if (result >= 0)
		return "ok";
	name = strerrorname_np(errno);
	return name ? name : "E?";
}

/* Helpers' results live in a ring of buffers, so that one report line can show several. */
static char *scratch(void)
{
	static char ring[16][512];
	static unsigned next;

	return ring[next++ % 16];
}

static void close_quietly(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int put_file(const char *name, const char *content, mode_t mode)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ssize_t done;

	if (fd < 0)
		return -1;
	done = write(fd, content, strlen(content));
	close(fd);
	return done == (ssize_t)strlen(content) ? 0 : -1;
}

/* The first 64 bytes of a file, NULs and other unprintable bytes as \xNN; an errno name if it cannot be read. */
static const char *content_of_fd(int fd)
{
	char *shown = scratch();
	unsigned char data[64];
	ssize_t got = pread(fd, data, sizeof(data), 0);
	size_t used = 0;

	if (got < 0)
		return rc(-1);
	if (got == 0)
		return "(empty)";
	for (ssize_t i = 0; i < got; i++) {
		if (data[i] > 0x20 && data[i] < 0x7f)
			used += snprintf(shown + used, 512 - used, "%c", data[i]);
		else
			used += snprintf(shown + used, 512 - used, "\\x%02x", data[i]);
	}
	return shown;
}

static const char *content_of(const char *name)
{
	int fd = open(name, O_RDONLY);
	const char *shown;

	if (fd < 0)
		return rc(-1);
	shown = content_of_fd(fd);
	close(fd);
	return shown;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "chr";
	case S_IFBLK: return "blk";
	}
	return "unknown";
}

/* "<type> <mode in octal>" after lstat, or the errno name. */
static const char *mode_of(const char *name)
{
	char *shown = scratch();
	struct stat st;

	if (lstat(name, &st) < 0)
		return rc(-1);
	snprintf(shown, 512, "%s %04o", type_name(st.st_mode), st.st_mode & 07777);
	return shown;
}

static long nlink_of(const char *name)
{
	struct stat st;

	return lstat(name, &st) < 0 ? -1 : (long)st.st_nlink;
}

static const char *exists(const char *name)
{
	struct stat st;

	return lstat(name, &st) < 0 ? rc(-1) : "exists";
}

/* ---- open ---------------------------------------------------------------------------------------------------- */

static void check_open(void)
{
	int fd;
	struct stat st;

	put_file("o_file", "hello", 0644);
	mkdir("o_dir", 0755);
	fd = open("o_file", O_WRONLY | O_CREAT | O_EXCL, 0644);
	report("open_excl_existing", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_dir", O_RDONLY | O_CREAT | O_EXCL, 0644);
	report("open_excl_existing_dir", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_new", O_WRONLY | O_CREAT | O_EXCL, 0644);
	report("open_excl_new", "%s", rc(fd));
	close_quietly(fd);

	fd = open("o_file", O_WRONLY | O_TRUNC);
	begin("open_trunc");
	add("%s", rc(fd));
	add(" size=%ld", fd >= 0 && fstat(fd, &st) == 0 ? (long)st.st_size : -1L);
	add(" content=%s", content_of("o_file"));
	end();
	close_quietly(fd);

	put_file("o_append", "hello", 0644);
	fd = open("o_append", O_WRONLY | O_APPEND);
	if (fd >= 0) {
		ssize_t first = write(fd, "abc", 3);
		lseek(fd, 0, SEEK_SET);
		ssize_t second = write(fd, "def", 3);
		ssize_t third = pwrite(fd, "ghi", 3, 0); /* Linux: O_APPEND wins over pwrite's offset */
		begin("open_append");
		add("%zd", first);
		add(" %zd", second);
		add(" %zd", third);
		add(" pos=%ld", (long)lseek(fd, 0, SEEK_CUR));
		add(" content=%s", content_of("o_append"));
		end();
		close(fd);
	} else {
		report("open_append", "%s", rc(-1));
	}

	/* Two descriptors appending in turn (two processes writing one log): nothing is overwritten. */
	int first = open("o_log", O_WRONLY | O_CREAT | O_APPEND, 0644), second = open("o_log", O_WRONLY | O_APPEND);
	for (int round = 0; round < 3; round++) {
		write(first, round == 0 ? "a" : round == 1 ? "c" : "e", 1);
		write(second, round == 0 ? "b" : round == 1 ? "d" : "f", 1);
	}
	close_quietly(first);
	close_quietly(second);
	report("append_two_fds", "%s", content_of("o_log"));

	fd = open("o_file", O_RDONLY | O_DIRECTORY);
	report("open_directory_on_file", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_dir", O_RDONLY | O_DIRECTORY);
	report("open_directory_on_dir", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_dir", O_WRONLY);
	report("open_dir_for_write", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_dir", O_RDONLY | O_CREAT, 0644);
	report("open_creat_on_dir", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_missing", O_RDONLY);
	report("open_missing", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_file/below", O_RDONLY);
	report("open_below_file", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_missing_dir/new", O_WRONLY | O_CREAT, 0644);
	report("open_creat_in_missing_dir", "%s", rc(fd));
	close_quietly(fd);
	report("stat_file_trailing_slash", "%s", exists("o_file/"));
	report("stat_dir_trailing_slash", "%s", exists("o_dir/"));

	/* Creating with a mode that forbids writing still gives a writable descriptor (POSIX open(2)). */
	fd = open("o_readonly_new", O_RDWR | O_CREAT | O_EXCL, 0444);
	if (fd >= 0) {
		ssize_t done = write(fd, "data", 4);
		begin("creat_readonly_mode_write");
		add("%s", rc(done));
		add(" content=%s", content_of_fd(fd));
		add(" mode=%s", mode_of("o_readonly_new"));
		end();
		close(fd);
	} else {
		report("creat_readonly_mode_write", "%s", rc(-1));
	}
	fd = open("o_readonly_new", O_RDWR);
	report("open_readonly_file_for_write", "%s", rc(fd));
	close_quietly(fd);

	put_file("o_writeonly", "secret", 0200);
	chmod("o_writeonly", 0200);
	fd = open("o_writeonly", O_RDONLY);
	report("open_0200_for_read", "%s", rc(fd));
	close_quietly(fd);
	fd = open("o_writeonly", O_WRONLY);
	report("open_0200_for_write", "%s", rc(fd));
	close_quietly(fd);

	fd = open("o_tmpfile_dir", O_RDONLY);
	mkdir("o_tmpfile_dir", 0755);
	fd = open("o_tmpfile_dir", O_TMPFILE | O_RDWR, 0600);
	report("open_tmpfile", "%s", rc(fd));
	close_quietly(fd);

	fd = open("o_file", O_RDWR);
	if (fd >= 0) {
		write(fd, "0123456789", 10);
		char tail[4] = "";
		ssize_t got = pread(fd, tail, 3, 7);
		begin("pread_after_write");
		add("%zd", got);
		add(" %.3s", tail);
		add(" end=%ld", (long)lseek(fd, 0, SEEK_END));
		end();
		got = pread(fd, tail, 3, 100);
		report("pread_past_eof", "%zd", got);
		ssize_t done = pwrite(fd, "X", 1, 12);
		begin("pwrite_past_eof");
		add("%zd", done);
		add(" content=%s", content_of_fd(fd));
		end();
		close(fd);
	}
}

/* ---- modes --------------------------------------------------------------------------------------------------- */

static void check_modes(void)
{
	static const mode_t masks[] = { 022, 077, 0, 027 };
	char name[64];
	int fd;

	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		umask(masks[i]);
		snprintf(name, sizeof(name), "m_dir_%03o", masks[i]);
		mkdir(name, 0777);
		snprintf(name + 32, 32, "mkdir_umask_%03o", masks[i]);
		report(name + 32, "%s", mode_of(name));
		snprintf(name, sizeof(name), "m_file_%03o", masks[i]);
		fd = open(name, O_WRONLY | O_CREAT, 0666);
		close_quietly(fd);
		snprintf(name + 32, 32, "creat_umask_%03o", masks[i]);
		report(name + 32, "%s", mode_of(name));
	}
	umask(022);
	fd = open("m_exec", O_WRONLY | O_CREAT, 0755);
	close_quietly(fd);
	report("creat_mode_0755", "%s", mode_of("m_exec"));
	mkdir("m_dir_0700", 0700);
	report("mkdir_mode_0700", "%s", mode_of("m_dir_0700"));
	mkdir("m_dir_1777", 01777);
	report("mkdir_mode_1777", "%s", mode_of("m_dir_1777"));

	static const mode_t file_modes[] = { 0, 0400, 0777, 0640, 04755, 02755, 01644, 06777 };
	put_file("m_chmod", "x", 0644);
	for (size_t i = 0; i < sizeof(file_modes) / sizeof(file_modes[0]); i++) {
		int result = chmod("m_chmod", file_modes[i]);
		snprintf(name, sizeof(name), "chmod_file_%04o", file_modes[i]);
		begin(name);
		add("%s", rc(result));
		add(" %s", mode_of("m_chmod"));
		end();
	}
	static const mode_t dir_modes[] = { 0700, 01777, 02755, 03775, 0555, 0 };
	mkdir("m_chmod_dir", 0755);
	for (size_t i = 0; i < sizeof(dir_modes) / sizeof(dir_modes[0]); i++) {
		int result = chmod("m_chmod_dir", dir_modes[i]);
		snprintf(name, sizeof(name), "chmod_dir_%04o", dir_modes[i]);
		begin(name);
		add("%s", rc(result));
		add(" %s", mode_of("m_chmod_dir"));
		end();
	}
	chmod("m_chmod_dir", 0755);

	/* A setgid directory hands its group and (to directories) the setgid bit down. */
	mkdir("m_sgid", 0755);
	chmod("m_sgid", 02755);
	mkdir("m_sgid/sub", 0755);
	put_file("m_sgid/file", "x", 0644);
	report("setgid_dir_subdir", "%s", mode_of("m_sgid/sub"));
	report("setgid_dir_file", "%s", mode_of("m_sgid/file"));

	/* Writing to a setuid file as its (unprivileged) owner clears setuid (and setgid with group exec). */
	put_file("m_suid_write", "x", 0644);
	chmod("m_suid_write", 06755);
	fd = open("m_suid_write", O_WRONLY | O_APPEND);
	if (fd >= 0) {
		write(fd, "y", 1);
		close(fd);
	}
	report("write_clears_setuid", "%s", mode_of("m_suid_write"));

	/* Permissions are checked at open: fchmod of an open descriptor does not stop it writing. */
	fd = open("m_fchmod", O_RDWR | O_CREAT, 0644);
	if (fd >= 0) {
		int changed = fchmod(fd, 0444);
		ssize_t done = write(fd, "after", 5);
		struct stat st;
		fstat(fd, &st);
		begin("fchmod_then_write");
		add("%s", rc(changed));
		add(" %s", rc(done));
		add(" mode=%04o", st.st_mode & 07777);
		add(" content=%s", content_of_fd(fd));
		end();
		close(fd);
	}

	put_file("m_access", "x", 0644);
	chmod("m_access", 0);
	report("access_000_F_OK", "%s", rc(access("m_access", F_OK)));
	report("access_000_R_OK", "%s", rc(access("m_access", R_OK)));
	report("access_000_W_OK", "%s", rc(access("m_access", W_OK)));
	report("access_000_X_OK", "%s", rc(access("m_access", X_OK)));
	fd = open("m_access", O_RDONLY);
	report("open_000_for_read", "%s", rc(fd));
	close_quietly(fd);
	chmod("m_access", 0400);
	report("access_0400_R_OK", "%s", rc(access("m_access", R_OK)));
	report("access_0400_W_OK", "%s", rc(access("m_access", W_OK)));
	chmod("m_access", 0644);
	report("access_0644_X_OK", "%s", rc(access("m_access", X_OK)));
	chmod("m_access", 0755);
	report("access_0755_X_OK", "%s", rc(access("m_access", X_OK)));

	/* A directory without write permission refuses new names; without search, lookups below it. */
	mkdir("m_ro_dir", 0755);
	put_file("m_ro_dir/inside", "x", 0644);
	chmod("m_ro_dir", 0555);
	fd = open("m_ro_dir/new", O_WRONLY | O_CREAT, 0644);
	report("creat_in_0555_dir", "%s", rc(fd));
	close_quietly(fd);
	report("unlink_in_0555_dir", "%s", rc(unlink("m_ro_dir/inside")));
	chmod("m_ro_dir", 0644);
	report("stat_in_0644_dir", "%s", rc(access("m_ro_dir/inside", F_OK)));
	chmod("m_ro_dir", 0755);

	/* Permission bits of the file itself do not guard its name: the directory's do (SMB's READONLY attribute
	 * would refuse the delete and the rename). */
	put_file("m_readonly", "ro", 0444);
	chmod("m_readonly", 0444);
	report("rename_0444_file", "%s", rc(rename("m_readonly", "m_readonly2")));
	report("unlink_0444_file", "%s", rc(unlink("m_readonly2")));
	put_file("m_readonly", "ro", 0444);
	chmod("m_readonly", 0444);
	report("truncate_0444_file", "%s", rc(truncate("m_readonly", 0)));
	report("link_0444_file", "%s", rc(link("m_readonly", "m_readonly_link")));
	begin("unlink_0444_file_with_two_links");
	add("%s", rc(unlink("m_readonly")));
	add(" nlink=%ld", nlink_of("m_readonly_link"));
	end();
	/* Created read-only, then made writable: the mode is all there is to it. */
	put_file("m_was_readonly", "ro", 0444);
	chmod("m_was_readonly", 0644);
	fd = open("m_was_readonly", O_WRONLY | O_APPEND);
	begin("write_after_chmod_0444_to_0644");
	add("%s", rc(fd));
	add(" %s", rc(fd >= 0 ? write(fd, "+w", 2) : -1));
	close_quietly(fd);
	add(" content=%s", content_of("m_was_readonly"));
	end();
	fd = open("m_tmp_readonly", O_RDWR | O_CREAT | O_EXCL, 0444);
	begin("creat_0444_then_unlink_while_open");
	add("%s", rc(fd));
	add(" %s", rc(unlink("m_tmp_readonly")));
	add(" %s", rc(fd >= 0 ? write(fd, "x", 1) : -1));
	end();
	close_quietly(fd);
	mkdir("m_dir_000", 0755);
	chmod("m_dir_000", 0);
	report("rmdir_000_dir", "%s", rc(rmdir("m_dir_000")));
	mkdir("m_dir_555", 0755);
	chmod("m_dir_555", 0555);
	report("rename_0555_dir", "%s", rc(rename("m_dir_555", "m_dir_555b")));
	report("rmdir_0555_dir", "%s", rc(rmdir("m_dir_555b")));
	mkdir("m_ro_parent", 0755);
	put_file("m_ro_parent/f", "old", 0644);
	chmod("m_ro_parent", 0555);
	fd = open("m_ro_parent/f", O_WRONLY | O_TRUNC);
	begin("write_in_0555_dir");
	add("%s", rc(fd));
	add(" %s", rc(fd >= 0 ? write(fd, "new", 3) : -1));
	close_quietly(fd);
	add(" content=%s", content_of("m_ro_parent/f"));
	end();
	chmod("m_ro_parent", 0755);

	/* 64-bit offsets: one byte past 5 GiB. */
	fd = open("m_far", O_RDWR | O_CREAT, 0644);
	begin("write_past_5gib");
	add("%s", rc(pwrite(fd, "F", 1, 5LL << 30)));
	struct stat far;
	add(" size=%lld", fstat(fd, &far) == 0 ? (long long)far.st_size : -1LL);
	char back = '-';
	add(" read=%zd", pread(fd, &back, 1, 5LL << 30));
	add(":%c", back);
	end();
	close_quietly(fd);
	unlink("m_far");

	/* What a directory's own bits allow: no write, no read, no search. */
	mkdir("m_w_dir", 0755);
	put_file("m_w_dir/f", "f", 0644);
	put_file("m_outside", "o", 0644);
	chmod("m_w_dir", 0555);
	report("mkdir_in_0555_dir", "%s", rc(mkdir("m_w_dir/sub", 0755)));
	report("link_into_0555_dir", "%s", rc(link("m_outside", "m_w_dir/l")));
	report("symlink_in_0555_dir", "%s", rc(symlink("x", "m_w_dir/s")));
	report("rename_into_0555_dir", "%s", rc(rename("m_outside", "m_w_dir/moved")));
	report("rename_out_of_0555_dir", "%s", rc(rename("m_w_dir/f", "m_out")));
	chmod("m_w_dir", 0311);
	DIR *unreadable = opendir("m_w_dir");
	report("opendir_0311_dir", "%s", unreadable != NULL ? "ok" : rc(-1));
	if (unreadable != NULL)
		closedir(unreadable);
	report("open_known_name_in_0311_dir", "%s", content_of("m_w_dir/f"));
	chmod("m_w_dir", 0);
	report("chmod_in_0000_dir", "%s", rc(chmod("m_w_dir/f", 0600)));
	report("stat_0000_dir_itself", "%s", mode_of("m_w_dir"));
	chmod("m_w_dir", 0755);

	report("chown_self", "%s", rc(chown("m_chmod", getuid(), getgid())));
	report("chown_other_uid", "%s", rc(chown("m_chmod", getuid() + 1, (gid_t)-1)));
	report("chown_other_gid", "%s", rc(chown("m_chmod", (uid_t)-1, getgid() + 1)));
}

/* ---- directories --------------------------------------------------------------------------------------------- */

static void check_directories(void)
{
	mkdir("d_full", 0755);
	put_file("d_full/x", "x", 0644);
	put_file("d_file", "x", 0644);
	report("mkdir_existing", "%s", rc(mkdir("d_full", 0755)));
	report("mkdir_over_file", "%s", rc(mkdir("d_file", 0755)));
	report("rmdir_nonempty", "%s", rc(rmdir("d_full")));
	report("rmdir_file", "%s", rc(rmdir("d_file")));
	report("rmdir_missing", "%s", rc(rmdir("d_missing")));
	report("rmdir_dot", "%s", rc(rmdir("d_full/.")));
	report("unlink_dir", "%s", rc(unlink("d_full")));
	report("unlink_missing", "%s", rc(unlink("d_missing")));

	mkdir("d_links", 0755);
	report("dir_nlink_empty", "%ld", nlink_of("d_links"));
	mkdir("d_links/a", 0755);
	mkdir("d_links/b", 0755);
	put_file("d_links/f", "x", 0644);
	report("dir_nlink_two_subdirs", "%ld", nlink_of("d_links"));
	rmdir("d_links/a");
	report("dir_nlink_after_rmdir", "%ld", nlink_of("d_links"));

	/* An opened, removed directory: its name is free at once. */
	mkdir("d_open", 0755);
	int fd = open("d_open", O_RDONLY | O_DIRECTORY);
	report("rmdir_open_dir", "%s", rc(rmdir("d_open")));
	report("mkdir_after_rmdir_open", "%s", rc(mkdir("d_open", 0755)));
	close_quietly(fd);
}

static int compare_names(const void *left, const void *right)
{
	return strcmp(*(char *const *)left, *(char *const *)right);
}

static void check_readdir(void)
{
	char name[64];
	char *seen[BIG_DIR_COUNT + 8];
	size_t count = 0, dups = 0, missing = 0, extra = 0;
	int dot = 0, dotdot = 0;

	mkdir("r_dir", 0755);
	for (int i = 0; i < BIG_DIR_COUNT; i++) {
		snprintf(name, sizeof(name), "r_dir/entry-%04d-padding-to-make-listings-longer", i);
		put_file(name, "x", 0644);
	}
	for (int i = 0; i < BIG_DIR_COUNT; i += 3) {
		snprintf(name, sizeof(name), "r_dir/entry-%04d-padding-to-make-listings-longer", i);
		unlink(name);
	}
	DIR *dir = opendir("r_dir");
	if (dir == NULL) {
		report("readdir_after_churn", "%s", rc(-1));
		return;
	}
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0) {
			dot++;
			continue;
		}
		if (strcmp(entry->d_name, "..") == 0) {
			dotdot++;
			continue;
		}
		int index;
		if (sscanf(entry->d_name, "entry-%d-", &index) != 1 || index % 3 == 0 || count >= BIG_DIR_COUNT + 8)
			extra++;
		else
			seen[count++] = strdup(entry->d_name);
	}
	closedir(dir);
	qsort(seen, count, sizeof(seen[0]), compare_names);
	for (size_t i = 1; i < count; i++)
		dups += strcmp(seen[i - 1], seen[i]) == 0;
	missing = BIG_DIR_COUNT - (BIG_DIR_COUNT + 2) / 3 - (count - dups);
	begin("readdir_after_churn");
	add("entries=%zu", count);
	add(" dups=%zu", dups);
	add(" missing=%zu", missing);
	add(" extra=%zu", extra);
	add(" dot=%d", dot);
	add(" dotdot=%d", dotdot);
	end();
	for (size_t i = 0; i < count; i++)
		free(seen[i]);

	/* The d_type of each kind of object. */
	mkdir("r_types", 0755);
	put_file("r_types/file", "x", 0644);
	mkdir("r_types/dir", 0755);
	symlink("file", "r_types/link");
	mkfifo("r_types/fifo", 0644);
	dir = opendir("r_types");
	if (dir != NULL) {
		while ((entry = readdir(dir)) != NULL) {
			if (entry->d_name[0] == '.')
				continue;
			char check[300];
			snprintf(check, sizeof(check), "readdir_d_type_%s", entry->d_name);
			report(check, "%d", entry->d_type);
		}
		closedir(dir);
	}

	/* rewinddir after adding a name shows it. */
	dir = opendir("r_types");
	if (dir != NULL) {
		int before = 0, after = 0;
		while (readdir(dir) != NULL)
			before++;
		put_file("r_types/late", "x", 0644);
		rewinddir(dir);
		while (readdir(dir) != NULL)
			after++;
		closedir(dir);
		report("rewinddir_sees_new_entry", "%d", after - before);
	}
}

/* rm -r's pattern: read a big directory (several QUERY_DIRECTORY responses on SMB) and remove each name read
 * so far before reading on. Every name must come exactly once; none may be skipped. */
static void check_readdir_while_unlinking(void)
{
	static char seen[UNLINK_DIR_COUNT];
	char name[300];
	size_t listed = 0, dups = 0, strays = 0, unlink_failures = 0;

	mkdir("r_unlink", 0755);
	for (int i = 0; i < UNLINK_DIR_COUNT; i++) {
		snprintf(name, sizeof(name), "r_unlink/n%04d-a-long-enough-name-to-need-several-responses", i);
		put_file(name, "", 0644);
	}
	DIR *dir = opendir("r_unlink");
	if (dir == NULL) {
		report("readdir_while_unlinking", "%s", rc(-1));
		return;
	}
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		int index;
		if (entry->d_name[0] == '.')
			continue;
		if (sscanf(entry->d_name, "n%d-", &index) != 1 || index < 0 || index >= UNLINK_DIR_COUNT) {
			strays++;
			continue;
		}
		dups += seen[index];
		seen[index] = 1;
		listed++;
		snprintf(name, sizeof(name), "r_unlink/%s", entry->d_name);
		unlink_failures += unlink(name) < 0;
	}
	closedir(dir);
	size_t missing = 0;
	for (int i = 0; i < UNLINK_DIR_COUNT; i++)
		missing += !seen[i];
	report("readdir_while_unlinking", "listed=%zu dups=%zu missing=%zu strays=%zu unlink_failures=%zu", listed,
	       dups, missing, strays, unlink_failures);
	report("rmdir_after_unlinking_all", "%s", rc(rmdir("r_unlink")));
}

/* ---- rename -------------------------------------------------------------------------------------------------- */

static void check_rename(void)
{
	put_file("n_src", "source", 0644);
	put_file("n_dst", "target", 0644);
	begin("rename_file_over_file");
	add("%s", rc(rename("n_src", "n_dst")));
	add(" src=%s", exists("n_src"));
	add(" dst=%s", content_of("n_dst"));
	end();

	mkdir("n_dir1", 0755);
	put_file("n_dir1/inner", "inner", 0644);
	mkdir("n_empty", 0755);
	begin("rename_dir_over_empty_dir");
	add("%s", rc(rename("n_dir1", "n_empty")));
	add(" inner=%s", content_of("n_empty/inner"));
	end();

	mkdir("n_dir2", 0755);
	report("rename_dir_over_nonempty_dir", "%s", rc(rename("n_dir2", "n_empty")));
	put_file("n_file", "file", 0644);
	report("rename_file_over_dir", "%s", rc(rename("n_file", "n_dir2")));
	report("rename_dir_over_file", "%s", rc(rename("n_dir2", "n_file")));
	mkdir("n_dir2/sub", 0755);
	report("rename_dir_into_own_subdir", "%s", rc(rename("n_dir2", "n_dir2/sub/moved")));
	begin("rename_file_to_itself");
	add("%s", rc(rename("n_file", "n_file")));
	add(" %s", content_of("n_file"));
	end();
	report("rename_dir_to_itself", "%s", rc(rename("n_dir2", "n_dir2")));
	report("rename_missing", "%s", rc(rename("n_missing", "n_other")));
	report("rename_into_missing_dir", "%s", rc(rename("n_file", "n_missing/n_file")));
	report("rename_file_below_file", "%s", rc(rename("n_file", "n_dst/x")));

	link("n_file", "n_file_link");
	begin("rename_hardlink_onto_itself");
	add("%s", rc(rename("n_file", "n_file_link")));
	add(" %s", exists("n_file"));
	add(" %s", exists("n_file_link"));
	end();

	put_file("n_noreplace", "x", 0644);
	report("rename_noreplace_existing", "%s",
	       rc(renameat2(AT_FDCWD, "n_noreplace", AT_FDCWD, "n_dst", RENAME_NOREPLACE)));
	report("rename_noreplace_new", "%s",
	       rc(renameat2(AT_FDCWD, "n_noreplace", AT_FDCWD, "n_noreplace2", RENAME_NOREPLACE)));
	report("rename_exchange", "%s",
	       rc(renameat2(AT_FDCWD, "n_noreplace2", AT_FDCWD, "n_dst", RENAME_EXCHANGE)));

	/* Renaming over a name that is open: the descriptor keeps the old file. */
	put_file("n_open_src", "new", 0644);
	put_file("n_open_dst", "old", 0644);
	int fd = open("n_open_dst", O_RDONLY);
	begin("rename_over_open_file");
	add("%s", rc(rename("n_open_src", "n_open_dst")));
	add(" fd=%s", content_of_fd(fd));
	add(" name=%s", content_of("n_open_dst"));
	end();
	close_quietly(fd);

	/* A renamed open file: its descriptor writes on, the inode number stays. */
	put_file("n_moving", "abc", 0644);
	struct stat before, after;
	lstat("n_moving", &before);
	fd = open("n_moving", O_RDWR);
	int moved = rename("n_moving", "n_moved");
	ssize_t done = pwrite(fd, "XYZ", 3, 3);
	begin("rename_open_then_write");
	add("%s", rc(moved));
	add(" %s", rc(done));
	add(" content=%s", content_of("n_moved"));
	end();
	close_quietly(fd);
	lstat("n_moved", &after);
	report("rename_keeps_inode", "%s", before.st_ino == after.st_ino ? "same" : "changed");

	/* A directory whose files are open can be renamed; the descriptors follow. */
	mkdir("n_busy_dir", 0755);
	put_file("n_busy_dir/f", "abc", 0644);
	fd = open("n_busy_dir/f", O_RDWR);
	begin("rename_dir_with_open_file");
	add("%s", rc(rename("n_busy_dir", "n_busy_moved")));
	add(" %s", rc(fd >= 0 ? pwrite(fd, "XYZ", 3, 0) : -1));
	add(" content=%s", content_of("n_busy_moved/f"));
	end();
	close_quietly(fd);
	int dir_fd = open("n_busy_moved", O_RDONLY | O_DIRECTORY);
	report("rename_open_dir", "%s", rc(rename("n_busy_moved", "n_busy_moved2")));
	close_quietly(dir_fd);

	/* Moving between directories. */
	mkdir("n_a", 0755);
	mkdir("n_b", 0755);
	put_file("n_a/f", "moved", 0644);
	begin("rename_across_dirs");
	add("%s", rc(rename("n_a/f", "n_b/f")));
	add(" %s", content_of("n_b/f"));
	end();
	begin("rename_dir_across_dirs");
	add("%s", rc(rename("n_a", "n_b/a")));
	add(" nlink_parent=%ld", nlink_of("n_b"));
	add(" nlink_moved=%ld", nlink_of("n_b/a"));
	end();
}

/* ---- links --------------------------------------------------------------------------------------------------- */

static void check_links(void)
{
	put_file("l_file", "linked", 0644);
	report("link_create", "%s", rc(link("l_file", "l_second")));
	begin("link_nlink_both");
	add("%ld", nlink_of("l_file"));
	add(" %ld", nlink_of("l_second"));
	end();
	struct stat one, two;
	lstat("l_file", &one);
	lstat("l_second", &two);
	report("link_same_inode", "%s", one.st_ino == two.st_ino ? "same" : "different");
	report("link_existing_target", "%s", rc(link("l_file", "l_second")));
	mkdir("l_dir", 0755);
	report("link_dir", "%s", rc(link("l_dir", "l_dir2")));
	report("link_missing", "%s", rc(link("l_missing", "l_new")));
	int fd = open("l_second", O_WRONLY | O_APPEND);
	write(fd, "+more", 5);
	close_quietly(fd);
	report("link_write_other_name", "%s", content_of("l_file"));
	begin("link_unlink_one");
	add("%s", rc(unlink("l_file")));
	add(" nlink=%ld", nlink_of("l_second"));
	add(" content=%s", content_of("l_second"));
	end();

	/* POSIX unlink of an open file: the descriptor keeps working; the name is free at once. */
	put_file("l_open", "before", 0644);
	fd = open("l_open", O_RDWR);
	int removed = unlink("l_open");
	struct stat st;
	int stated = fstat(fd, &st);
	ssize_t done = pwrite(fd, "AFTER!", 6, 0);
	begin("unlink_open_file");
	add("%s", rc(removed));
	add(" name=%s", exists("l_open"));
	end();
	begin("unlink_open_fstat");
	add("%s", rc(stated));
	add(" nlink=%ld", (long)st.st_nlink);
	end();
	begin("unlink_open_io");
	add("%s", rc(done));
	add(" content=%s", content_of_fd(fd));
	end();
	int again = open("l_open", O_WRONLY | O_CREAT | O_EXCL, 0644);
	report("unlink_open_recreate", "%s", rc(again));
	if (again >= 0)
		write(again, "fresh", 5);
	close_quietly(again);
	begin("unlink_open_recreate_content");
	add("old=%s", content_of_fd(fd));
	add(" new=%s", content_of("l_open"));
	end();
	close_quietly(fd);
	report("unlink_open_after_close", "%s", content_of("l_open"));

	/* A file unlinked while open by two descriptors, then closed in turn. */
	put_file("l_two", "two", 0644);
	int first = open("l_two", O_RDONLY), second = open("l_two", O_RDONLY);
	unlink("l_two");
	close_quietly(first);
	begin("unlink_open_two_fds");
	add("%s", content_of_fd(second));
	add(" name=%s", exists("l_two"));
	end();
	close_quietly(second);

	/* An unlinked directory entry can be renamed over while the old file is still open. */
	put_file("l_busy", "busy", 0644);
	put_file("l_repl", "repl", 0644);
	fd = open("l_busy", O_RDONLY);
	begin("rename_over_unlinked_open");
	add("%s", rc(unlink("l_busy")));
	add(" %s", rc(rename("l_repl", "l_busy")));
	add(" %s", content_of("l_busy"));
	end();
	close_quietly(fd);
}

static void check_symlinks(void)
{
	char target[PATH_MAX];
	ssize_t length;
	struct stat st;

	put_file("s_target", "pointed", 0644);
	report("symlink_create", "%s", rc(symlink("s_target", "s_link")));
	length = readlink("s_link", target, sizeof(target) - 1);
	target[length > 0 ? length : 0] = 0;
	begin("symlink_readlink");
	add("%s", rc(length));
	add(" %s", target);
	end();
	begin("symlink_lstat");
	add("%s", mode_of("s_link"));
	add(" size=%ld", lstat("s_link", &st) == 0 ? (long)st.st_size : -1L);
	end();
	report("symlink_follow", "%s", content_of("s_link"));
	report("symlink_existing", "%s", rc(symlink("elsewhere", "s_link")));
	int fd = open("s_link", O_RDONLY | O_NOFOLLOW);
	report("symlink_open_nofollow", "%s", rc(fd));
	close_quietly(fd);
	report("symlink_readlink_on_file", "%s", rc(readlink("s_target", target, sizeof(target))));

	symlink("s_nowhere", "s_dangling");
	report("symlink_dangling_stat", "%s", rc(stat("s_dangling", &st)));
	report("symlink_dangling_lstat", "%s", mode_of("s_dangling"));
	fd = open("s_dangling", O_WRONLY | O_CREAT, 0644);
	begin("symlink_dangling_creat");
	add("%s", rc(fd));
	add(" target=%s", exists("s_nowhere"));
	end();
	close_quietly(fd);

	symlink("s_loop_b", "s_loop_a");
	symlink("s_loop_a", "s_loop_b");
	fd = open("s_loop_a", O_RDONLY);
	report("symlink_loop_open", "%s", rc(fd));
	close_quietly(fd);
	report("symlink_loop_stat", "%s", rc(stat("s_loop_a", &st)));

	mkdir("s_dir", 0755);
	put_file("s_dir/inner", "inner", 0644);
	symlink("s_dir", "s_dirlink");
	report("symlink_to_dir_walk", "%s", content_of("s_dirlink/inner"));
	symlink("../s_target", "s_dir/up");
	report("symlink_relative_up", "%s", content_of("s_dir/up"));
	report("symlink_rmdir", "%s", rc(rmdir("s_dirlink")));
	begin("symlink_unlink");
	add("%s", rc(unlink("s_link")));
	add(" target=%s", exists("s_target"));
	end();
	begin("symlink_chmod_follows");
	add("%s", rc(chmod("s_dirlink", 0700)));
	add(" %s", mode_of("s_dir"));
	end();
	chmod("s_dir", 0755);

	char long_target[1024];
	memset(long_target, 'x', sizeof(long_target) - 1);
	long_target[sizeof(long_target) - 1] = 0;
	symlink(long_target, "s_long");
	length = readlink("s_long", target, sizeof(target));
	begin("symlink_long_target");
	add("%s", rc(length));
	add(" %zd", length);
	end();
	symlink("/absolute/elsewhere", "s_abs");
	length = readlink("s_abs", target, sizeof(target) - 1);
	target[length > 0 ? length : 0] = 0;
	begin("symlink_absolute_target");
	add("%s", rc(length));
	add(" %s", target);
	end();
	begin("symlink_rename");
	add("%s", rc(rename("s_abs", "s_abs2")));
	add(" %s", mode_of("s_abs2"));
	end();
	begin("symlink_hardlink");
	add("%s", rc(link("s_abs2", "s_abs3")));
	add(" %s", mode_of("s_abs3"));
	add(" nlink=%ld", nlink_of("s_abs2"));
	end();
}

/* ---- sizes, holes, times ------------------------------------------------------------------------------------- */

static void check_sizes(void)
{
	int fd = open("z_trunc", O_RDWR | O_CREAT | O_TRUNC, 0644);
	struct stat st;

	write(fd, "abc", 3);
	begin("ftruncate_grow");
	add("%s", rc(ftruncate(fd, 10)));
	add(" size=%ld", fstat(fd, &st) == 0 ? (long)st.st_size : -1L);
	add(" content=%s", content_of_fd(fd));
	end();
	begin("ftruncate_shrink");
	add("%s", rc(ftruncate(fd, 2)));
	add(" size=%ld", fstat(fd, &st) == 0 ? (long)st.st_size : -1L);
	add(" content=%s", content_of_fd(fd));
	end();
	report("ftruncate_negative", "%s", rc(ftruncate(fd, -1)));
	begin("truncate_path");
	add("%s", rc(truncate("z_trunc", 5)));
	add(" size=%ld", stat("z_trunc", &st) == 0 ? (long)st.st_size : -1L);
	end();
	report("truncate_dir", "%s", rc(truncate(".", 0)));
	close(fd);
	fd = open("z_trunc", O_RDONLY);
	report("ftruncate_readonly_fd", "%s", rc(ftruncate(fd, 0)));
	close(fd);

	fd = open("z_sparse", O_RDWR | O_CREAT | O_TRUNC, 0644);
	ssize_t done = pwrite(fd, "E", 1, 8 << 20);
	fsync(fd);
	fstat(fd, &st);
	begin("sparse_write");
	add("%s", rc(done));
	add(" size=%ld", (long)st.st_size);
	end();
	report("sparse_blocks", "%s", (long long)st.st_blocks * 512 < (1 << 20) ? "sparse" : "allocated");
	char hole[16];
	memset(hole, 'x', sizeof(hole));
	done = pread(fd, hole, sizeof(hole), 4 << 20);
	int zeros = 1;
	for (size_t i = 0; i < sizeof(hole); i++)
		zeros &= hole[i] == 0;
	begin("sparse_hole_reads_zeros");
	add("%zd", done);
	add(" %s", zeros ? "zeros" : "data");
	end();
	report("seek_data", "%ld", (long)lseek(fd, 0, SEEK_DATA));
	report("seek_hole", "%ld", (long)lseek(fd, 0, SEEK_HOLE));
	report("seek_end", "%ld", (long)lseek(fd, 0, SEEK_END));
	begin("fallocate_grow");
	add("%s", rc(fallocate(fd, 0, 0, 12 << 20)));
	add(" size=%ld", fstat(fd, &st) == 0 ? (long)st.st_size : -1L);
	end();
	begin("fallocate_keep_size");
	add("%s", rc(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 16 << 20)));
	add(" size=%ld", fstat(fd, &st) == 0 ? (long)st.st_size : -1L);
	end();
	close(fd);

	fd = open("z_big", O_RDWR | O_CREAT | O_TRUNC, 0644);
	static char block[1 << 20];
	unsigned long sum = 0, back = 0;
	for (size_t i = 0; i < sizeof(block); i++) {
		block[i] = (char)(i * 7 + i / 251);
		sum += (unsigned char)block[i] * (i % 13 + 1);
	}
	done = write(fd, block, sizeof(block));
	close(fd);
	memset(block, 0, sizeof(block));
	fd = open("z_big", O_RDONLY);
	ssize_t got = read(fd, block, sizeof(block));
	for (size_t i = 0; i < sizeof(block); i++)
		back += (unsigned char)block[i] * (i % 13 + 1);
	close(fd);
	begin("write_read_1mib");
	add("%zd", done);
	add(" %zd", got);
	add(" %s", sum == back ? "same" : "differs");
	end();
}

static const char *time_of(const struct timespec *when)
{
	char *shown = scratch();

	snprintf(shown, 512, "%ld.%09ld", (long)when->tv_sec, when->tv_nsec);
	return shown;
}

static void check_times(void)
{
	struct timespec times[2];
	struct stat st;
	time_t now = time(NULL);

	put_file("t_file", "x", 0644);
	times[0] = (struct timespec){ 1000000000, 123456700 };
	times[1] = (struct timespec){ 1100000000, 987654300 };
	report("utimensat_100ns", "%s", rc(utimensat(AT_FDCWD, "t_file", times, 0)));
	stat("t_file", &st);
	report("utimensat_100ns_atime", "%s", time_of(&st.st_atim));
	report("utimensat_100ns_mtime", "%s", time_of(&st.st_mtim));

	times[0] = (struct timespec){ 1000000001, 123456789 };
	times[1] = (struct timespec){ 1100000001, 1 };
	utimensat(AT_FDCWD, "t_file", times, 0);
	stat("t_file", &st);
	report("utimensat_1ns_mtime", "%s", time_of(&st.st_mtim));

	times[0] = (struct timespec){ 0, UTIME_OMIT };
	times[1] = (struct timespec){ 1200000000, 0 };
	utimensat(AT_FDCWD, "t_file", times, 0);
	stat("t_file", &st);
	begin("utimensat_omit_atime");
	add("atime=%s", time_of(&st.st_atim));
	add(" mtime=%s", time_of(&st.st_mtim));
	end();

	times[0] = (struct timespec){ 1300000000, 0 };
	times[1] = (struct timespec){ 0, UTIME_NOW };
	utimensat(AT_FDCWD, "t_file", times, 0);
	stat("t_file", &st);
	begin("utimensat_now_mtime");
	add("atime=%s", labs(st.st_atim.tv_sec - now) < 120 ? "now" : time_of(&st.st_atim));
	add(" mtime=%s", labs(st.st_mtim.tv_sec - now) < 120 ? "now" : time_of(&st.st_mtim));
	end();

	times[0] = (struct timespec){ 946684800, 0 }; /* 2000-01-01 */
	times[1] = (struct timespec){ -86400, 0 };    /* before 1970 */
	report("utimensat_pre_epoch", "%s", rc(utimensat(AT_FDCWD, "t_file", times, 0)));
	stat("t_file", &st);
	report("utimensat_pre_epoch_mtime", "%s", time_of(&st.st_mtim));

	int fd = open("t_file", O_RDWR);
	times[0] = (struct timespec){ 1400000000, 500000000 };
	times[1] = (struct timespec){ 1400000000, 500000000 };
	report("futimens", "%s", rc(futimens(fd, times)));
	fstat(fd, &st);
	report("futimens_mtime", "%s", time_of(&st.st_mtim));
	write(fd, "y", 1);
	close(fd);
	stat("t_file", &st);
	report("write_updates_mtime", "%s", labs(st.st_mtim.tv_sec - now) < 120 ? "now" : time_of(&st.st_mtim));

	times[0] = times[1] = (struct timespec){ 1400000000, 0 };
	utimensat(AT_FDCWD, "t_file", times, 0);
	truncate("t_file", 0);
	stat("t_file", &st);
	report("truncate_updates_mtime", "%s", labs(st.st_mtim.tv_sec - now) < 120 ? "now" : time_of(&st.st_mtim));

	mkdir("t_dir", 0755);
	times[0] = times[1] = (struct timespec){ 1400000000, 0 };
	utimensat(AT_FDCWD, "t_dir", times, 0);
	put_file("t_dir/new", "x", 0644);
	stat("t_dir", &st);
	report("creat_updates_dir_mtime", "%s", labs(st.st_mtim.tv_sec - now) < 120 ? "now" : time_of(&st.st_mtim));
	utimensat(AT_FDCWD, "t_dir", times, 0);
	unlink("t_dir/new");
	stat("t_dir", &st);
	report("unlink_updates_dir_mtime", "%s", labs(st.st_mtim.tv_sec - now) < 120 ? "now" : time_of(&st.st_mtim));

	/* The owner sets a read-only file's times, as tar and cp -p do after setting its mode. */
	put_file("t_readonly", "x", 0644);
	chmod("t_readonly", 0444);
	times[0] = times[1] = (struct timespec){ 1234567890, 0 };
	begin("utimensat_0444_own_file");
	add("%s", rc(utimensat(AT_FDCWD, "t_readonly", times, 0)));
	add(" mtime=%s", stat("t_readonly", &st) == 0 ? time_of(&st.st_mtim) : rc(-1));
	end();
	report("utimensat_now_0444_own_file", "%s", rc(utimensat(AT_FDCWD, "t_readonly", NULL, 0)));

	symlink("t_file", "t_link");
	times[0] = times[1] = (struct timespec){ 1500000000, 0 };
	report("utimensat_symlink_nofollow", "%s", rc(utimensat(AT_FDCWD, "t_link", times, AT_SYMLINK_NOFOLLOW)));

	put_file("t_ctime", "x", 0644);
	times[0] = times[1] = (struct timespec){ 1400000000, 0 };
	utimensat(AT_FDCWD, "t_ctime", times, 0);
	stat("t_ctime", &st);
	report("utimensat_sets_ctime_now", "%s", labs(st.st_ctim.tv_sec - now) < 120 ? "now" : time_of(&st.st_ctim));
}

/* ---- names --------------------------------------------------------------------------------------------------- */

static int listed(const char *dir_name, const char *name)
{
	DIR *dir = opendir(dir_name);
	struct dirent *entry;
	int found = 0;

	if (dir == NULL)
		return -1;
	while ((entry = readdir(dir)) != NULL)
		found += strcmp(entry->d_name, name) == 0;
	closedir(dir);
	return found;
}

static void check_names(void)
{
	static const struct {
		const char *label, *name;
	} odd[] = {
		{ "backslash", "a\\b" }, { "colon", "a:b" }, { "star", "a*b" }, { "question", "a?b" },
		{ "quote", "a\"b" }, { "less", "a<b" }, { "greater", "a>b" }, { "pipe", "a|b" },
		{ "trailing_dot", "dot." }, { "trailing_space", "space " }, { "leading_space", " lead" },
		{ "control_char", "ctl\x01x" }, { "newline", "new\nline" }, { "utf8", "caf\xc3\xa9-\xe2\x82\xac" },
		{ "invalid_utf8", "bad\xff\xfe" }, { "dos_device", "CON" }, { "dos_device_ext", "aux.txt" },
		{ "stream_syntax", "f::$DATA" },
	};
	char check[96], path[64];

	mkdir("c_names", 0755);
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		snprintf(path, sizeof(path), "c_names/%s", odd[i].name);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd >= 0) {
			write(fd, odd[i].label, strlen(odd[i].label));
			close(fd);
		}
		snprintf(check, sizeof(check), "name_%s", odd[i].label);
		begin(check);
		add("%s", rc(fd));
		add(" listed=%d", listed("c_names", odd[i].name));
		add(" content=%s", content_of(path));
		end();
	}

	mkdir("c_case", 0755);
	put_file("c_case/a", "lower", 0644);
	int fd = open("c_case/A", O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd >= 0) {
		write(fd, "upper", 5);
		close(fd);
	}
	report("case_distinct_create", "%s", rc(fd));
	begin("case_distinct_content");
	add("%s", content_of("c_case/a"));
	add(" %s", content_of("c_case/A"));
	end();
	report("case_lookup_other_case", "%s", exists("c_case/B"));
	put_file("c_case/Mixed", "m", 0644);
	report("case_lookup_wrong_case", "%s", exists("c_case/mixed"));
	begin("case_rename_case_only");
	add("%s", rc(rename("c_case/Mixed", "c_case/mixed")));
	add(" listed_new=%d", listed("c_case", "mixed"));
	add(" listed_old=%d", listed("c_case", "Mixed"));
	end();
	mkdir("c_case/Dir", 0755);
	report("case_mkdir_other_case", "%s", rc(mkdir("c_case/dir", 0755)));

	char name[300];
	memset(name, 'n', sizeof(name));
	name[255] = 0;
	fd = open(name, O_WRONLY | O_CREAT, 0644);
	begin("name_255_bytes");
	add("%s", rc(fd));
	add(" listed=%d", listed(".", name));
	end();
	close_quietly(fd);
	name[255] = 'n';
	name[256] = 0;
	fd = open(name, O_WRONLY | O_CREAT, 0644);
	report("name_256_bytes", "%s", rc(fd));
	close_quietly(fd);
	report("stat_256_bytes", "%s", exists(name));
	report("mkdir_256_bytes", "%s", rc(mkdir(name, 0755)));
	/* 85 three-byte characters: 255 bytes, 85 UTF-16 units. */
	for (int i = 0; i < 85; i++)
		memcpy(name + 3 * i, "\xe2\x82\xac", 3);
	name[255] = 0;
	fd = open(name, O_WRONLY | O_CREAT, 0644);
	begin("name_255_bytes_utf8");
	add("%s", rc(fd));
	add(" listed=%d", listed(".", name));
	end();
	close_quietly(fd);
	/* 128 two-byte characters: 256 bytes, 128 UTF-16 units. */
	for (int i = 0; i < 128; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[256] = 0;
	fd = open(name, O_WRONLY | O_CREAT, 0644);
	report("name_256_bytes_utf8", "%s", rc(fd));
	close_quietly(fd);

	/* A deep path: 40 levels of 50-byte names. */
	char deep[PATH_MAX];
	size_t used = 0;
	int level, made = 0;
	for (level = 0; level < 40; level++) {
		used += snprintf(deep + used, sizeof(deep) - used, "%sdeep-%044d", level ? "/" : "", level);
		if (mkdir(deep, 0755) < 0)
			break;
		made++;
	}
	strcat(deep, "/leaf");
	begin("deep_path");
	add("levels=%d", made);
	add(" %s", rc(put_file(deep, "leaf", 0644)));
	end();
}

/* ---- special files ------------------------------------------------------------------------------------------- */

static void check_special(void)
{
	begin("mkfifo");
	add("%s", rc(mkfifo("p_fifo", 0644)));
	add(" %s", mode_of("p_fifo"));
	end();
	report("mkfifo_existing", "%s", rc(mkfifo("p_fifo", 0644)));
	begin("mknod_fifo");
	add("%s", rc(mknod("p_fifo2", S_IFIFO | 0600, 0)));
	add(" %s", mode_of("p_fifo2"));
	end();
	report("mknod_chr_unprivileged", "%s", rc(mknod("p_chr", S_IFCHR | 0600, makedev(1, 3))));
	begin("mknod_reg");
	add("%s", rc(mknod("p_reg", S_IFREG | 0600, 0)));
	add(" %s", mode_of("p_reg"));
	end();

	int fd = open("p_fifo", O_RDWR | O_NONBLOCK);
	char got[8] = "";
	if (fd >= 0) {
		write(fd, "pipe", 4);
		ssize_t n = read(fd, got, sizeof(got) - 1);
		got[n > 0 ? n : 0] = 0;
	}
	begin("fifo_io");
	add("%s", rc(fd));
	add(" %s", got);
	end();
	close_quietly(fd);
	report("fifo_unlink", "%s", rc(unlink("p_fifo2")));
	begin("fifo_rename");
	add("%s", rc(rename("p_fifo", "p_fifo3")));
	add(" %s", mode_of("p_fifo3"));
	end();

	int sock = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un address = { .sun_family = AF_UNIX };
	strcpy(address.sun_path, "p_sock");
	begin("socket_bind");
	add("%s", rc(bind(sock, (struct sockaddr *)&address, sizeof(address))));
	add(" %s", mode_of("p_sock"));
	end();
	close_quietly(sock);
	report("socket_unlink", "%s", rc(unlink("p_sock")));
}

/* ---- mmap, sync, statfs, xattrs ------------------------------------------------------------------------------ */

static void check_mmap_sync(void)
{
	int fd = open("y_mmap", O_RDWR | O_CREAT | O_TRUNC, 0644);
	ftruncate(fd, 8192);
	char *map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		report("mmap_shared", "%s", rc(-1));
	} else {
		memcpy(map + 4096, "mapped", 6);
		int synced = msync(map, 8192, MS_SYNC);
		int other = open("y_mmap", O_RDONLY);
		char got[8] = "";
		pread(other, got, 6, 4096);
		begin("mmap_write_read_other_fd");
		add("%s", rc(synced));
		add(" %s", got);
		end();
		close_quietly(other);
		pwrite(fd, "viawrite", 8, 0);
		report("write_seen_in_mmap", "%.8s", map);
		munmap(map, 8192);
	}
	int source = open("y_copy_src", O_RDWR | O_CREAT | O_TRUNC, 0644);
	int target = open("y_copy_dst", O_RDWR | O_CREAT | O_TRUNC, 0644);
	static char pattern[200000];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)(i * 31 + 7);
	write(source, pattern, sizeof(pattern));
	loff_t in_offset = 1000, out_offset = 5;
	begin("copy_file_range");
	add("%zd", copy_file_range(source, &in_offset, target, &out_offset, 150000, 0));
	static char copied[150000];
	ssize_t got_back = pread(target, copied, sizeof(copied), 5);
	add(" read=%zd", got_back);
	add(" %s", got_back == sizeof(copied) && memcmp(copied, pattern + 1000, sizeof(copied)) == 0 ? "same" : "differs");
	end();
	close_quietly(source);
	close_quietly(target);
	report("fsync", "%s", rc(fsync(fd)));
	report("fdatasync", "%s", rc(fdatasync(fd)));
	report("sync_file_range", "%s", rc(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)));
	close(fd);
	int dir = open(".", O_RDONLY | O_DIRECTORY);
	report("fsync_dir", "%s", rc(fsync(dir)));
	close_quietly(dir);

	struct statfs fs;
	if (statfs(".", &fs) < 0) {
		report("statfs", "%s", rc(-1));
	} else {
		report("statfs", "ok");
		report("statfs_sane", "%s", fs.f_bsize > 0 && fs.f_blocks > 0 && fs.f_bfree <= fs.f_blocks
		       && fs.f_bavail <= fs.f_bfree ? "sane" : "insane");
		report("statfs_namelen", "%ld", (long)fs.f_namelen);
	}

	put_file("x_file", "x", 0644);
	report("xattr_set", "%s", rc(setxattr("x_file", "user.smbsrv_test", "value", 5, 0)));
	char value[32] = "";
	ssize_t got = getxattr("x_file", "user.smbsrv_test", value, sizeof(value) - 1);
	value[got > 0 ? got : 0] = 0;
	begin("xattr_get");
	add("%s", rc(got));
	add(" %s", value);
	end();
	report("xattr_get_missing", "%s", rc(getxattr("x_file", "user.missing", value, sizeof(value))));
	report("xattr_create_existing", "%s", rc(setxattr("x_file", "user.smbsrv_test", "v", 1, XATTR_CREATE)));
	report("xattr_replace_missing", "%s", rc(setxattr("x_file", "user.other", "v", 1, XATTR_REPLACE)));
	report("xattr_case", "%s", rc(setxattr("x_file", "user.SMBSRV_TEST", "upper", 5, XATTR_CREATE)));
	char names[256];
	ssize_t listed = listxattr("x_file", names, sizeof(names));
	int found = 0;
	for (ssize_t at = 0; listed > 0 && at < listed; at += strlen(names + at) + 1)
		found += strcmp(names + at, "user.smbsrv_test") == 0;
	report("xattr_list", "%s found=%d", rc(listed), found);
	mkdir("x_dir", 0755);
	begin("xattr_on_dir");
	add("%s", rc(setxattr("x_dir", "user.d", "dv", 2, 0)));
	add(" %s", rc(getxattr("x_dir", "user.d", value, sizeof(value))));
	end();
	symlink("x_file", "x_link");
	report("xattr_on_symlink_nofollow", "%s", rc(lsetxattr("x_link", "user.l", "lv", 2, 0)));
	static char big[3000];
	memset(big, 'b', sizeof(big));
	begin("xattr_3000_bytes");
	add("%s", rc(setxattr("x_file", "user.big", big, sizeof(big), 0)));
	add(" %s", rc(getxattr("x_file", "user.big", NULL, 0)));
	ssize_t size = getxattr("x_file", "user.big", NULL, 0);
	add(" size=%zd", size);
	end();
	begin("xattr_empty_value");
	add("%s", rc(setxattr("x_file", "user.empty", "", 0, 0)));
	add(" size=%zd", getxattr("x_file", "user.empty", NULL, 0));
	end();
	report("xattr_remove", "%s", rc(removexattr("x_file", "user.smbsrv_test")));
	report("xattr_remove_missing", "%s", rc(removexattr("x_file", "user.smbsrv_test")));
}

/* ---- locks --------------------------------------------------------------------------------------------------- */

static int fcntl_lock(int fd, int command, short type, off_t start, off_t len)
{
	struct flock lock = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	return fcntl(fd, command, &lock);
}

/* The lock a child process sees: "locked" if F_SETLK of a write lock conflicts, "free" if it is granted. */
static const char *child_sees(const char *name, off_t start, off_t len)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int fd = open(name, O_RDWR);
		if (fd < 0)
			_exit(3);
		_exit(fcntl_lock(fd, F_SETLK, F_WRLCK, start, len) == 0 ? 0 : (errno == EAGAIN || errno == EACCES) ? 1 : 2);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return "error";
	switch (WEXITSTATUS(status)) {
	case 0: return "free";
	case 1: return "locked";
	}
	return "error";
}

static void check_locks(void)
{
	put_file("k_file", "0123456789abcdef", 0644);
	int one = open("k_file", O_RDWR), two = open("k_file", O_RDWR);

	/* POSIX record locks belong to the process: a second descriptor of the same process never conflicts. */
	begin("fcntl_same_process_two_fds");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_WRLCK, 0, 4)));
	add(" %s", rc(fcntl_lock(two, F_SETLK, F_WRLCK, 0, 4)));
	end();
	report("fcntl_child_conflicts", "%s", child_sees("k_file", 0, 4));
	report("fcntl_child_other_range", "%s", child_sees("k_file", 8, 4));
	begin("fcntl_unlock");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_UNLCK, 0, 4)));
	add(" %s", child_sees("k_file", 0, 4));
	end();
	fcntl_lock(one, F_SETLK, F_WRLCK, 0, 4);
	/* ... and closing any descriptor of the file drops all of the process's locks on it. */
	close(two);
	report("fcntl_close_other_fd_releases", "%s", child_sees("k_file", 0, 4));
	struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4 };
	fcntl(one, F_GETLK, &probe);
	report("fcntl_getlk_own", "%s", probe.l_type == F_UNLCK ? "unlck" : "locked");
	fcntl_lock(one, F_SETLK, F_RDLCK, 0, 0);
	report("fcntl_read_lock_child_write", "%s", child_sees("k_file", 0, 4));
	fcntl_lock(one, F_SETLK, F_UNLCK, 0, 0);
	close(one);

	/* What SQLite does with one descriptor: read lock, upgrade to write, downgrade, unlock the middle of a
	 * range (it splits), locks past EOF and at 1 GiB (its PENDING_BYTE). */
	one = open("k_file", O_RDWR);
	begin("fcntl_upgrade_read_to_write");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_RDLCK, 0, 8)));
	add(" %s", rc(fcntl_lock(one, F_SETLK, F_WRLCK, 0, 8)));
	add(" child=%s", child_sees("k_file", 0, 8));
	end();
	begin("fcntl_downgrade_write_to_read");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_RDLCK, 0, 8)));
	add(" child_write=%s", child_sees("k_file", 0, 8));
	end();
	fcntl_lock(one, F_SETLK, F_UNLCK, 0, 0);
	fcntl_lock(one, F_SETLK, F_WRLCK, 0, 30);
	begin("fcntl_unlock_middle_splits");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_UNLCK, 10, 10)));
	add(" head=%s", child_sees("k_file", 0, 10));
	add(" middle=%s", child_sees("k_file", 12, 4));
	add(" tail=%s", child_sees("k_file", 20, 10));
	end();
	fcntl_lock(one, F_SETLK, F_UNLCK, 0, 0);
	begin("fcntl_lock_past_eof_and_1gib");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_WRLCK, 1LL << 30, 1)));
	add(" %s", rc(fcntl_lock(one, F_SETLK, F_RDLCK, (1LL << 30) + 2, 510)));
	add(" child=%s", child_sees("k_file", 1LL << 30, 1));
	end();
	fcntl_lock(one, F_SETLK, F_UNLCK, 0, 0);
	begin("fcntl_whole_file_lock");
	add("%s", rc(fcntl_lock(one, F_SETLK, F_WRLCK, 0, 0)));
	add(" child_far=%s", child_sees("k_file", 1LL << 40, 1));
	end();
	fcntl_lock(one, F_SETLK, F_UNLCK, 0, 0);
	close(one);

	/* flock: shared to exclusive and back on one descriptor. */
	one = open("k_file", O_RDWR);
	begin("flock_convert");
	add("%s", rc(flock(one, LOCK_SH | LOCK_NB)));
	add(" %s", rc(flock(one, LOCK_EX | LOCK_NB)));
	add(" %s", rc(flock(one, LOCK_SH | LOCK_NB)));
	end();
	flock(one, LOCK_UN);
	close(one);

	/* OFD locks belong to the open file description: two descriptors of one process conflict. */
	one = open("k_file", O_RDWR);
	two = open("k_file", O_RDWR);
	begin("ofd_lock_two_fds");
	add("%s", rc(fcntl_lock(one, F_OFD_SETLK, F_WRLCK, 0, 4)));
	add(" %s", rc(fcntl_lock(two, F_OFD_SETLK, F_WRLCK, 0, 4)));
	end();
	close(one);
	close(two);

	/* flock(2) locks too belong to the open file description. */
	one = open("k_file", O_RDWR);
	two = open("k_file", O_RDWR);
	begin("flock_two_fds");
	add("%s", rc(flock(one, LOCK_EX | LOCK_NB)));
	add(" %s", rc(flock(two, LOCK_EX | LOCK_NB)));
	end();
	begin("flock_shared_two_fds");
	add("%s", rc(flock(one, LOCK_UN)));
	add(" %s", rc(flock(one, LOCK_SH | LOCK_NB)));
	add(" %s", rc(flock(two, LOCK_SH | LOCK_NB)));
	end();
	flock(one, LOCK_UN);
	flock(two, LOCK_UN);
	int dup_fd = dup(one);
	flock(one, LOCK_EX);
	report("flock_dup_shares_lock", "%s", rc(flock(dup_fd, LOCK_EX | LOCK_NB)));
	close(dup_fd);
	close(one);
	report("flock_after_close", "%s", rc(flock(two, LOCK_EX | LOCK_NB)));
	close(two);

	/* Locked bytes are advisory: another descriptor still reads and writes them. */
	one = open("k_file", O_RDWR);
	fcntl_lock(one, F_SETLK, F_WRLCK, 0, 16);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("k_file", O_RDWR);
		char got[4];
		_exit(fd >= 0 && pread(fd, got, 4, 0) == 4 && pwrite(fd, "ZZ", 2, 2) == 2 ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	report("fcntl_lock_is_advisory", "%s", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "io" : "blocked");
	close(one);
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: posixcheck DIR [UID GID]\n");
		return 2;
	}
	if (chdir(argv[1]) < 0) {
		perror(argv[1]);
		return 2;
	}
	if (argc == 4) {
		gid_t gid = (gid_t)atol(argv[3]);
		if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid((uid_t)atol(argv[2])) < 0) {
			perror("dropping privileges");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	report("uid", "%s", getuid() == 0 ? "root" : "user");
	check_open();
	check_modes();
	check_directories();
	check_readdir();
	check_readdir_while_unlinking();
	check_rename();
	check_links();
	check_symlinks();
	check_sizes();
	check_times();
	check_names();
	check_special();
	check_mmap_sync();
	check_locks();
	report("done", "ok");
	return 0;
}
