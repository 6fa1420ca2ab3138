/*
 * One local user's view of a `multiuser` cifs mount, for tests/kernel/test_cifs_multiuser.py: run as root in the
 * guest, it drops to UID/GID, starts a session keyring of its own with (optionally) the SMB credentials that
 * `cifscreds add` would store for that user, and makes the checks of ROLE on the mount, one line per check:
 *
 *   CHECK <role>_<name> <result>
 *
 * The result is an observation (ok, an errno name, file content, a sorted listing), never a verdict.
 *
 *   multiuser ROLE DIR UID GID [SERVER_IP USER:PASSWORD]
 *
 * ROLE: first (creates a.txt and a.dir), second (tries the first user's files, creates b.txt), first_again (tries
 * b.txt), nokey (no credentials), badpass (a wrong password), root (stays uid 0: the mount's own session),
 * burst_a/burst_b (40 new files each, run at the same time), hold_a/hold_b (a file held open across a cut
 * connection), after_cut_a/after_cut_b (a new file once the connection is back).
 *
 * The key: cifs.ko (fs/smb/client/connect.c cifs_set_cifscreds) calls request_key() for a "logon" key described
 * "cifs:a:<server IPv4 in dotted quad>" in the calling task's keyrings and splits its payload at the first ':'
 * into user name and password; a multiuser mount does this when a uid without a session first touches it
 * (cifs_construct_tcon). The key is added after dropping to UID, to a session keyring created by that user, as
 * cifscreds does from the user's login session: it is then found by possession, and no other uid's task sees it.
 *
 * Built with gcc -static by tests/kernel/image.py's helper (no libkeyutils: raw add_key/keyctl system calls).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BURST_FILES 40

static const char *role;
static const char *dir;

static void report(const char *name, const char *fmt, ...)
{
	va_list args;

	printf("CHECK %s_%s ", role, name);
	va_start(args, fmt);
	vprintf(fmt, args);
	va_end(args);
	putchar('\n');
	fflush(stdout);
}

/* "ok" for a call that returned >= 0, else the errno's name. */
static const char *rc(long result)
{
	const char *name;

	if (result >= 0)
		return "ok";
	name = strerrorname_np(errno);
	return name ? name : "E?";
}

static const char *path(const char *name)
{
	static char ring[4][4096];
	static unsigned next;
	char *buffer = ring[next++ % 4];

	snprintf(buffer, 4096, "%s/%s", dir, name);
	return buffer;
}

/* Writes content through a new open with `flags`: "ok", "short", or the errno of the open, write or close. */
static const char *write_through(const char *name, const char *content, int flags)
{
	int fd = open(path(name), flags, 0600);
	ssize_t done;

	if (fd < 0)
		return rc(-1);
	done = write(fd, content, strlen(content));
	if (done < 0) {
		const char *failed = rc(-1);

		close(fd);
		return failed;
	}
	if (close(fd) < 0)
		return rc(-1);
	return done == (ssize_t)strlen(content) ? "ok" : "short";
}

static const char *put_file(const char *name, const char *content)
{
	return write_through(name, content, O_WRONLY | O_CREAT | O_EXCL);
}

static const char *append_to(const char *name, const char *content)
{
	return write_through(name, content, O_WRONLY | O_APPEND);
}

/* The file's content (printable text only in these tests), or the errno of the open or read. */
static const char *content_of(const char *name)
{
	static char shown[256];
	int fd = open(path(name), O_RDONLY);
	ssize_t got;

	if (fd < 0)
		return rc(-1);
	got = read(fd, shown, sizeof(shown) - 1);
	if (got < 0) {
		const char *failed = rc(-1);

		close(fd);
		return failed;
	}
	close(fd);
	shown[got] = '\0';
	return got ? shown : "(empty)";
}

static const char *open_for_write(const char *name)
{
	int fd = open(path(name), O_WRONLY);

	if (fd < 0)
		return rc(-1);
	close(fd);
	return "ok";
}

static int by_name(const void *left, const void *right)
{
	return strcmp(*(char *const *)left, *(char *const *)right);
}

/* The names in a directory (without . and ..), sorted and joined with ','; the errno if it cannot be listed. */
static const char *listing(const char *name)
{
	static char shown[1024];
	char *names[64];
	size_t count = 0, used = 0;
	struct dirent *entry;
	DIR *stream = opendir(name[0] ? path(name) : dir);

	if (stream == NULL)
		return rc(-1);
	errno = 0;
	while ((entry = readdir(stream)) != NULL && count < 64) {
		if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
			names[count++] = strdup(entry->d_name);
	}
	if (errno) {
		const char *failed = rc(-1);

		closedir(stream);
		return failed;
	}
	closedir(stream);
	qsort(names, count, sizeof(*names), by_name);
	shown[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		used += snprintf(shown + used, sizeof(shown) - used, "%s%s", i ? "," : "", names[i]);
		free(names[i]);
	}
	return count ? shown : "(empty)";
}

static const char *stat_of(const char *name)
{
	static char shown[128];
	struct stat st;

	if (stat(path(name), &st) < 0)
		return rc(-1);
	snprintf(shown, sizeof(shown), "ok size=%lld mode=%04o", (long long)st.st_size, st.st_mode & 07777);
	return shown;
}

/* The value of the user.mark extended attribute, or the errno. */
static const char *mark_of(const char *name)
{
	static char shown[64];
	ssize_t got = getxattr(path(name), "user.mark", shown, sizeof(shown) - 1);

	if (got < 0)
		return rc(-1);
	shown[got] = '\0';
	return shown;
}

static long set_mark(const char *name, const char *value)
{
	return setxattr(path(name), "user.mark", value, strlen(value), 0);
}

/* Fixed times, so that both servers are asked the same. */
static long set_times(const char *name)
{
	const struct timespec times[2] = {{1400000000, 0}, {1400000000, 0}};

	return utimensat(AT_FDCWD, path(name), times, 0);
}

static void become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
		perror("dropping privileges");
		exit(2);
	}
}

/* A session keyring of this task's own (KEYCTL_JOIN_SESSION_KEYRING with no name makes a new anonymous one),
 * holding the credentials if given. */
static void keyring(const char *server_ip, const char *credentials)
{
	char description[64];

	if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0) {
		perror("keyctl(KEYCTL_JOIN_SESSION_KEYRING)");
		exit(2);
	}
	if (credentials == NULL)
		return;
	snprintf(description, sizeof(description), "cifs:a:%s", server_ip);
	report("key", "%s", rc(syscall(SYS_add_key, "logon", description, credentials, strlen(credentials),
				      KEY_SPEC_SESSION_KEYRING)));
}

static void first(void)
{
	report("create_private", "%s", put_file("a.txt", "secret-of-a"));
	report("read_own", "%s", content_of("a.txt"));
	report("set_xattr_own", "%s", rc(set_mark("a.txt", "from-a")));
	report("utimens_own", "%s", rc(set_times("a.txt")));
	report("mkdir", "%s", rc(mkdir(path("a.dir"), 0700)));
	report("create_in_own_dir", "%s", put_file("a.dir/inner", "inner-of-a"));
	/* team/ is 2770 root:team and A and B are members (supplementary groups): notes.txt is 0660 root:team. */
	report("team_list", "%s", listing("team"));
	report("team_read", "%s", content_of("team/notes.txt"));
	report("team_create", "%s", put_file("team/a-plan.txt", "plan-of-a"));
}

static void second(void)
{
	report("stat_other", "%s", stat_of("a.txt"));
	report("read_other", "%s", content_of("a.txt"));
	report("write_other", "%s", open_for_write("a.txt"));
	report("truncate_other", "%s", rc(truncate(path("a.txt"), 0)));
	report("chmod_other", "%s", rc(chmod(path("a.txt"), 0444)));
	report("utimens_other", "%s", rc(set_times("a.txt")));
	report("get_xattr_other", "%s", mark_of("a.txt"));
	report("set_xattr_other", "%s", rc(set_mark("a.txt", "from-b")));
	report("link_other", "%s", rc(link(path("a.txt"), path("b-link.txt"))));
	report("unlink_other", "%s", rc(unlink(path("a.txt"))));
	report("rename_other", "%s", rc(rename(path("a.txt"), path("b-moved.txt"))));
	report("list_other_dir", "%s", listing("a.dir"));
	report("create_in_other_dir", "%s", put_file("a.dir/from-b", "b-was-here"));
	report("team_list", "%s", listing("team"));
	report("team_append", "%s", append_to("team/notes.txt", "+b"));
	report("team_read_other", "%s", content_of("team/a-plan.txt"));
	report("create_private", "%s", put_file("b.txt", "secret-of-b"));
	report("read_own", "%s", content_of("b.txt"));
	report("list_share", "%s", listing(""));
	report("rename_over_other", "%s", rc(rename(path("b.txt"), path("a.txt"))));
}

static void first_again(void)
{
	report("read_other", "%s", content_of("b.txt"));
	report("read_own", "%s", content_of("a.txt"));
	report("get_xattr_own", "%s", mark_of("a.txt"));
	report("stat_own", "%s", stat_of("a.txt"));
	report("unlink_other", "%s", rc(unlink(path("b.txt"))));
}

/* Many creates in a row, while the other user does the same on the same connection: "ok N" or the first errno. */
static void burst(void)
{
	char name[64];
	int made;

	for (made = 0; made < BURST_FILES; made++) {
		const char *result;

		snprintf(name, sizeof(name), "%s-%02d", role, made);
		result = put_file(name, role);
		if (strcmp(result, "ok")) {
			report("created", "%s after %d", result, made);
			return;
		}
	}
	report("created", "ok %d", made);
}

static void wait_for(const char *flag)
{
	for (int tenths = 0; tenths < 600 && access(flag, F_OK) < 0; tenths++)
		usleep(100000);
}

/* A file held open for writing across the cut of the mount's TCP connection: the host cuts it once every holder
 * has written (guest/multiuser.sh), and the second write needs cifs.ko to set this user's session up again and
 * reopen the file as this user. */
static void hold(void)
{
	/* Each holder's bytes of team/shared.txt (16 dots, 0660 root:team): before and after the cut. */
	const int offset = strcmp(role, "hold_a") ? 8 : 0;
	const char *mine = strcmp(role, "hold_a") ? "BBbb" : "AAaa";
	char name[64], flag[64];
	int fd, shared;

	snprintf(name, sizeof(name), "%s.txt", role);
	fd = open(path(name), O_WRONLY | O_CREAT | O_EXCL, 0600);
	report("open", "%s", rc(fd));
	if (fd < 0)
		return;
	shared = open(path("team/shared.txt"), O_WRONLY);
	report("open_shared", "%s", rc(shared));
	report("write_before", "%s", rc(write(fd, "before-cut,", 11)));
	report("fsync_before", "%s", rc(fsync(fd)));
	report("write_shared_before", "%s", rc(pwrite(shared, mine, 2, offset)));
	report("fsync_shared_before", "%s", rc(fsync(shared)));
	snprintf(flag, sizeof(flag), "/tmp/%s.ready", role);
	close(open(flag, O_WRONLY | O_CREAT, 0644));
	wait_for("/tmp/cut.done");
	report("write_after", "%s", rc(write(fd, "after-cut", 9)));
	report("close", "%s", rc(close(fd)));
	report("write_shared_after", "%s", rc(pwrite(shared, mine + 2, 2, offset + 4)));
	report("close_shared", "%s", rc(close(shared)));
	report("content", "%s", content_of(name));
}

/* A new file after the reconnect: the re-established session must still be this user's. */
static void after_cut(void)
{
	char name[64];

	snprintf(name, sizeof(name), "%s.txt", role);
	report("create", "%s", put_file(name, role));
}

/* A uid without credentials, or with a wrong password: none of this may act as anyone. */
static void refused(void)
{
	report("list_share", "%s", listing(""));
	report("stat_other", "%s", stat_of("a.txt"));
	report("read_other", "%s", content_of("a.txt"));
	report("create", "%s", put_file("c.txt", "from-a-uid-without-credentials"));
	report("mkdir", "%s", rc(mkdir(path("c.dir"), 0755)));
}

/* uid 0, the mounting user: the mount's own session (the SMB user of mount -o username=). */
static void mounter(void)
{
	report("create", "%s", put_file("root.txt", "from-the-mount-session"));
	report("read_first", "%s", content_of("a.txt"));
	report("team_list", "%s", listing("team"));
	report("team_read", "%s", content_of("team/notes.txt"));
	report("list_share", "%s", listing(""));
}

int main(int argc, char **argv)
{
	static const struct {
		const char *role;
		void (*run)(void);
	} roles[] = {
		{"first", first}, {"second", second}, {"first_again", first_again},
		{"nokey", refused}, {"badpass", refused}, {"root", mounter},
		{"burst_a", burst}, {"burst_b", burst}, {"hold_a", hold}, {"hold_b", hold},
		{"after_cut_a", after_cut}, {"after_cut_b", after_cut},
	};

	if (argc != 5 && argc != 7) {
		fprintf(stderr, "usage: %s ROLE DIR UID GID [SERVER_IP USER:PASSWORD]\n", argv[0]);
		return 2;
	}
	role = argv[1];
	dir = argv[2];
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		if (strcmp(roles[i].role, role))
			continue;
		become((uid_t)strtoul(argv[3], NULL, 10), (gid_t)strtoul(argv[4], NULL, 10));
		keyring(argc == 7 ? argv[5] : NULL, argc == 7 ? argv[6] : NULL);
		roles[i].run();
		return 0;
	}
	fprintf(stderr, "unknown role %s\n", role);
	return 2;
}
