/*
 * Metadata workloads for the cifs.ko benchmark guest (benchmarks/kernel_meta.py,
 * tests/kernel/guest/bench_meta.sh). The guest is busybox only, and a process per file costs milliseconds
 * under qemu's TCG, so the loops that touch every file run here, in one process, timed with
 * CLOCK_MONOTONIC.
 *
 *   kmeta create DIR N        creat()+close() of DIR/f00000 .. f<N-1>, as `touch` does for a new file
 *   kmeta stat DIR N          stat() of DIR/f00000 .. f<N-1> (no readdir: names are known, as make's are)
 *   kmeta walk DIR            readdir of every directory under DIR and lstat() of every entry, as
 *                             `git status` walks a work tree (it lstat()s every index entry and reads
 *                             directories for untracked files)
 *   kmeta mktree DIR D1 D2 F  a tree DIR/aI/bJ/fileK.c (D1 x D2 directories, F files each) of small files,
 *                             on the guest's tmpfs: the source of the untar workload
 *   kmeta time CMD [ARG...]   runs CMD, its output to /dev/null, and prints the elapsed time
 *
 * Every subcommand prints one line "NS <nanoseconds> COUNT <files touched>"; a failure exits 1 with the
 * errno's name on stderr. Built with gcc -static by benchmarks/kernel_meta.py.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fail(const char *what)
{
	fprintf(stderr, "kmeta: %s: %s (errno %d)\n", what, strerror(errno), errno);
	return 1;
}

static int report(long long started, long count)
{
	printf("NS %lld COUNT %ld\n", now_ns() - started, count);
	return 0;
}

static int create_files(const char *dir, long count)
{
	char path[4096];
	long long started = now_ns();

	for (long i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/f%05ld", dir, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			return fail(path);
		close(fd);
	}
	return report(started, count);
}

static int stat_files(const char *dir, long count)
{
	char path[4096];
	struct stat st;
	long long started = now_ns();

	for (long i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/f%05ld", dir, i);
		if (stat(path, &st) != 0)
			return fail(path);
		if (!S_ISREG(st.st_mode)) {
			fprintf(stderr, "kmeta: %s: not a regular file (mode %o)\n", path, st.st_mode);
			return 1;
		}
	}
	return report(started, count);
}

/* Depth-first; returns the number of entries lstat()ed, or -1. */
static long walk(const char *dir)
{
	DIR *handle = opendir(dir);
	struct dirent *entry;
	struct stat st;
	char path[4096];
	long count = 0;

	if (handle == NULL) {
		fail(dir);
		return -1;
	}
	while ((entry = readdir(handle)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
		if (lstat(path, &st) != 0) {
			fail(path);
			closedir(handle);
			return -1;
		}
		count++;
		if (S_ISDIR(st.st_mode)) {
			long below = walk(path);
			if (below < 0) {
				closedir(handle);
				return -1;
			}
			count += below;
		}
	}
	closedir(handle);
	return count;
}

static int make_tree(const char *root, int outer, int inner, int files)
{
	char path[4096];
	char body[256];
	long count = 0;
	long long started = now_ns();

	if (mkdir(root, 0755) != 0)
		return fail(root);
	for (int i = 0; i < outer; i++) {
		snprintf(path, sizeof(path), "%s/a%02d", root, i);
		if (mkdir(path, 0755) != 0)
			return fail(path);
		for (int j = 0; j < inner; j++) {
			snprintf(path, sizeof(path), "%s/a%02d/b%02d", root, i, j);
			if (mkdir(path, 0755) != 0)
				return fail(path);
			for (int k = 0; k < files; k++) {
				snprintf(path, sizeof(path), "%s/a%02d/b%02d/file%03d.c", root, i, j, k);
				int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
				if (fd < 0)
					return fail(path);
				int length = snprintf(body, sizeof(body), "/* %s */\nint f%d_%d_%d(void) { return %d; }\n",
						      path, i, j, k, i * j + k);
				if (write(fd, body, length) != length)
					return fail(path);
				close(fd);
				count++;
			}
		}
	}
	return report(started, count);
}

static int time_command(char **argv)
{
	long long started = now_ns();
	pid_t child = fork();
	int status;

	if (child < 0)
		return fail("fork");
	if (child == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(child, &status, 0) < 0)
		return fail("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "kmeta: %s exited with status %d\n", argv[0], status);
		return 1;
	}
	return report(started, 0);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "create") == 0)
		return create_files(argv[2], atol(argv[3]));
	if (argc == 4 && strcmp(argv[1], "stat") == 0)
		return stat_files(argv[2], atol(argv[3]));
	if (argc == 3 && strcmp(argv[1], "walk") == 0) {
		long long started = now_ns();
		long count = walk(argv[2]);
		return count < 0 ? 1 : report(started, count);
	}
	if (argc == 6 && strcmp(argv[1], "mktree") == 0)
		return make_tree(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (argc >= 3 && strcmp(argv[1], "time") == 0)
		return time_command(argv + 2);
	fprintf(stderr, "usage: kmeta create DIR N | stat DIR N | walk DIR | mktree DIR D1 D2 F | time CMD...\n");
	return 2;
}
