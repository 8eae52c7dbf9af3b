package ctl_test

import (
	"bufio"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestUninstallUnlessDaemonSet runs the DaemonSet's uninstall container
// with --unless-daemonset against a stand-in for the API server's
// DaemonSet GET: on SIGTERM while the DaemonSet exists (a rollout), ratchet
// stays installed; once it is gone (404), SIGTERM gives the config back.
func TestUninstallUnlessDaemonSet(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var gets atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/apps/v1/namespaces/kube-system/daemonsets/ratchet" || r.Header.Get("Authorization") != "Bearer tok3n" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusForbidden)
			return
		}
		gets.Add(1)
		w.WriteHeader(int(status.Load()))
		if status.Load() == http.StatusOK {
			_, _ = w.Write([]byte(`{"kind":"DaemonSet","metadata":{"name":"ratchet","namespace":"kube-system"}}`))
		}
	}))
	defer srv.Close()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	confDir, cniBin, sa := dir+"/net.d", dir+"/bin", dir+"/sa"
	for _, d := range []string{confDir, sa} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string][]byte{
		"token":     []byte("tok3n\n"),
		"namespace": []byte("kube-system"),
		"ca.crt":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
	} {
		if err := os.WriteFile(filepath.Join(sa, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conflist := "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"cluster\",\n  \"plugins\": [\n    {\"type\": \"ptp\", \"ipam\": {\"type\": \"host-local\", \"subnet\": \"198.51.100.0/24\"}}\n  ]\n}\n"
	if err := os.WriteFile(confDir+"/10-cluster.conflist", []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := []string{"--bin-dir", cniBin, "--conf-dir", confDir, "--plugin", filepath.Join(binDir, "ratchet")}
	mustCtl(t, nil, append([]string{"install"}, dirs...)...)
	installed, err := os.ReadFile(confDir + "/10-cluster.conflist")
	if err != nil {
		t.Fatal(err)
	}

	if _, errOut, code := ctl(t, nil, "install", "--uninstall", "--unless-daemonset", "kube-system/ratchet"); code != 2 || !strings.Contains(errOut, "--unless-daemonset") {
		t.Fatalf("--unless-daemonset without --on-signal: exit %d %s", code, errOut)
	}
	if _, errOut, code := ctl(t, nil, "install", "--uninstall", "--on-signal", "--unless-daemonset", "kube-system/Rat chet", "--service-account-dir", sa); code != 2 || !strings.Contains(errOut, "--unless-daemonset") {
		t.Fatalf("a bad DaemonSet name: exit %d %s", code, errOut)
	}

	// A bare name: the namespace comes from the service account mount.
	args := append([]string{"install", "--uninstall", "--on-signal", "--unless-daemonset", "ratchet", "--service-account-dir", sa}, dirs...)
	env := append(os.Environ(), "KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port)

	out := runUntilSIGTERM(t, env, args, nil)
	if !strings.Contains(out, "still exists") {
		t.Fatalf("output on a rollout's SIGTERM: %q", out)
	}
	if got, _ := os.ReadFile(confDir + "/10-cluster.conflist"); string(got) != string(installed) {
		t.Fatalf("conflist changed on a rollout's SIGTERM:\n%s", got)
	}
	if _, err := os.Stat(cniBin + "/ratchet"); err != nil {
		t.Fatalf("plugin removed on a rollout's SIGTERM: %v", err)
	}

	status.Store(http.StatusNotFound)
	out = runUntilSIGTERM(t, env, args, nil)
	if !strings.Contains(out, "is deleted") || !strings.Contains(out, "removed ratchet from") {
		t.Fatalf("output on the DaemonSet's deletion: %q", out)
	}
	if got, _ := os.ReadFile(confDir + "/10-cluster.conflist"); string(got) != conflist {
		t.Fatalf("conflist after the DaemonSet's deletion:\n%s\nwant:\n%s", got, conflist)
	}
	if _, err := os.Stat(cniBin + "/ratchet"); !os.IsNotExist(err) {
		t.Fatalf("plugin left after the DaemonSet's deletion: %v", err)
	}
	if n := gets.Load(); n != 2 {
		t.Fatalf("%d GETs of the DaemonSet, want one per SIGTERM (2)", n)
	}
}

// runUntilSIGTERM starts ratchetctl with args (env nil: this process's),
// runs before once it waits for the signal (nil: nothing), sends SIGTERM
// and returns what it printed after; it must exit 0.
func runUntilSIGTERM(t *testing.T, env, args []string, before func()) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "ratchetctl"), args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// The first line comes once the signal handler is in place: a SIGTERM
	// before it would kill the process instead of uninstalling.
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok || !strings.Contains(l, "waiting for SIGTERM") {
			t.Fatalf("first line %q (stderr %q)", l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no output within 30 s")
	}
	if before != nil {
		before()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v: %q %q", err, rest, stderr.String())
	}
	return strings.Join(rest, "\n")
}
