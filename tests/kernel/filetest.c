/*
 * File-range helper for the cifs.ko guest tests (busybox's cp reads and writes; it has neither
 * copy_file_range, FICLONE, hole punching nor SEEK_DATA/SEEK_HOLE).
 *
 * cifs.ko maps these onto the server: copy_file_range(2) onto FSCTL_SRV_REQUEST_RESUME_KEY +
 * FSCTL_SRV_COPYCHUNK_WRITE, FICLONE onto FSCTL_DUPLICATE_EXTENTS_TO_FILE, fallocate PUNCH_HOLE onto
 * FSCTL_SET_ZERO_DATA, and SEEK_DATA/SEEK_HOLE onto FSCTL_QUERY_ALLOCATED_RANGES.
 *
 *   filetest copy SRC DST            copy SRC into a new DST with copy_file_range, as coreutils cp does
 *   filetest clone SRC DST           clone SRC into a new DST with FICLONE, as cp --reflink=always does
 *   filetest punch FILE OFFSET LEN   fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE)
 *   filetest map FILE                print the data stretches as "OFFSET+LENGTH" (SEEK_DATA, SEEK_HOLE)
 *
 * A failure exits 1 with the errno's name and message on stderr. Built with gcc -static by tests/kernel/image.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "filetest: %s: %s (errno %d)\n", what, strerror(errno), errno);
	return 1;
}

static int open_pair(const char *source, const char *target, int *in, int *out)
{
	*in = open(source, O_RDONLY);
	if (*in < 0)
		return fail(source);
	*out = open(target, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (*out < 0)
		return fail(target);
	return 0;
}

static int copy(const char *source, const char *target)
{
	int in, out;
	struct stat st;

	if (open_pair(source, target, &in, &out) || fstat(in, &st) < 0)
		return 1;
	for (off_t left = st.st_size; left > 0;) {
		ssize_t done = copy_file_range(in, NULL, out, NULL, left, 0);
		if (done < 0)
			return fail("copy_file_range");
		if (done == 0)
			break;
		left -= done;
	}
	return close(out) < 0 ? fail("close") : 0;
}

static int clone(const char *source, const char *target)
{
	int in, out;

	if (open_pair(source, target, &in, &out))
		return 1;
	if (ioctl(out, FICLONE, in) < 0) {
		int err = errno;
		unlink(target);
		errno = err;
		return fail("FICLONE");
	}
	return close(out) < 0 ? fail("close") : 0;
}

static int punch(const char *file, const char *offset, const char *length)
{
	int fd = open(file, O_RDWR);

	if (fd < 0)
		return fail(file);
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, atoll(offset), atoll(length)) < 0)
		return fail("fallocate");
	return close(fd) < 0 ? fail("close") : 0;
}

static int map(const char *file)
{
	int fd = open(file, O_RDONLY);
	off_t position = 0;

	if (fd < 0)
		return fail(file);
	for (;;) {
		off_t data = lseek(fd, position, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? 0 : fail("SEEK_DATA");
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return fail("SEEK_HOLE");
		printf("%lld+%lld\n", (long long)data, (long long)(hole - data));
		position = hole;
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "copy"))
		return copy(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "clone"))
		return clone(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "punch"))
		return punch(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "map"))
		return map(argv[2]);
	fprintf(stderr, "usage: filetest copy|clone SRC DST | punch FILE OFFSET LEN | map FILE\n");
	return 2;
}
