package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerUID returns the effective uid of the process at the other end of a
// unix socket connection, as the kernel recorded it at connect
// (SO_PEERCRED): it cannot be forged by the caller.
func peerUID(conn net.Conn) (uint32, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a unix socket connection: %T", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}

// errPeerRefused is a caller that is neither root nor the agent's own uid.
var errPeerRefused = errors.New("caller refused: only root or the agent's own uid may call")

// checkPeer admits root (the plugin, as the runtime runs it) and the
// agent's own uid; the socket's modes already keep others out, and this
// holds even if they are loosened (a hostPath made by another tool).
func checkPeer(conn net.Conn) (uint32, error) {
	uid, err := peerUID(conn)
	if err != nil {
		return 0, err
	}
	if uid != 0 && int(uid) != os.Geteuid() {
		return uid, errPeerRefused
	}
	return uid, nil
}

// checkSocketDir makes the socket's directory, if it is missing, and
// checks it: a real directory (not a symlink), owned by root or the
// agent's uid, closed to others (0700; a directory made 0755, as a
// Kubernetes hostPath DirectoryOrCreate is, is tightened).
func checkSocketDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket dir %s is not a directory (a symlink is refused)", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("socket dir %s is owned by uid %d: refused, it must be owned by root or uid %d", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
