/*
 * Lock helper for the cifs.ko guest tests (busybox has no tool that takes fcntl or flock locks).
 *
 * cifs.ko turns fcntl byte-range locks and flock(2) into SMB2 LOCK requests ([MS-SMB2] 2.2.26), so two
 * processes in the guest holding different opens of one file exercise the server's byte-range lock table.
 *
 *   locktest fcntl-hold FILE r|w START LEN RELEASE   take the lock, print "held", wait until RELEASE exists
 *   locktest fcntl-try  FILE r|w START LEN           exit 0 if granted, 1 if it conflicts
 *   locktest flock-hold FILE RELEASE                 LOCK_EX, print "held", wait until RELEASE exists
 *   locktest flock-try  FILE                         LOCK_EX|LOCK_NB: exit 0 if granted, 1 if it conflicts
 *
 * Any other failure exits 2 with a message on stderr. Built with gcc -static by tests/kernel/image.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define HOLD_LIMIT_MS 120000
#define POLL_MS 20

static int fail(const char *what)
{
	fprintf(stderr, "locktest: %s: %s\n", what, strerror(errno));
	return 2;
}

static int conflict_errno(int err)
{
	/* POSIX allows either for F_SETLK; flock uses EWOULDBLOCK (== EAGAIN on Linux). */
	return err == EAGAIN || err == EACCES;
}

static int wait_for_release(const char *release)
{
	struct timespec pause = { 0, POLL_MS * 1000000L };
	int waited_ms;

	for (waited_ms = 0; waited_ms < HOLD_LIMIT_MS; waited_ms += POLL_MS) {
		if (access(release, F_OK) == 0)
			return 0;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "locktest: %s never appeared\n", release);
	return 2;
}

static int set_fcntl_lock(int fd, const char *kind, const char *start, const char *len)
{
	struct flock lock;

	memset(&lock, 0, sizeof(lock));
	lock.l_type = strcmp(kind, "r") == 0 ? F_RDLCK : F_WRLCK;
	lock.l_whence = SEEK_SET;
	lock.l_start = strtoll(start, NULL, 10);
	lock.l_len = strtoll(len, NULL, 10);
	return fcntl(fd, F_SETLK, &lock);
}

static void announce_held(void)
{
	printf("held\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: see the comment at the top of locktest.c\n");
		return 2;
	}
	/* fcntl write locks need a descriptor open for writing, read locks one open for reading. */
	fd = open(argv[2], O_RDWR);
	if (fd < 0)
		return fail("open");

	if (strcmp(argv[1], "fcntl-hold") == 0 && argc == 7) {
		if (set_fcntl_lock(fd, argv[3], argv[4], argv[5]) != 0)
			return fail("fcntl F_SETLK");
		announce_held();
		return wait_for_release(argv[6]);
	}
	if (strcmp(argv[1], "fcntl-try") == 0 && argc == 6) {
		if (set_fcntl_lock(fd, argv[3], argv[4], argv[5]) == 0)
			return 0;
		return conflict_errno(errno) ? 1 : fail("fcntl F_SETLK");
	}
	if (strcmp(argv[1], "flock-hold") == 0 && argc == 4) {
		if (flock(fd, LOCK_EX) != 0)
			return fail("flock LOCK_EX");
		announce_held();
		return wait_for_release(argv[3]);
	}
	if (strcmp(argv[1], "flock-try") == 0 && argc == 3) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		return conflict_errno(errno) ? 1 : fail("flock LOCK_EX|LOCK_NB");
	}
	fprintf(stderr, "locktest: bad arguments\n");
	return 2;
}
