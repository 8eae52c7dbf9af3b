package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// dockerPid asks the Docker Engine API (or podman's compatible service) for
// a running container's init pid, with no Docker client library: one GET on
// the unix socket named by $DOCKER_HOST (default /var/run/docker.sock).
func dockerPid(container string) (int, error) {
	sock := "/var/run/docker.sock"
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		path, ok := strings.CutPrefix(host, "unix://")
		if !ok {
			return 0, fmt.Errorf("DOCKER_HOST %q: only unix:// sockets are supported", host)
		}
		sock = path
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	// The host part is ignored: the transport always dials the socket.
	resp, err := client.Get("http://docker/containers/" + url.PathEscape(container) + "/json")
	if err != nil {
		return 0, fmt.Errorf("engine API on %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, fmt.Errorf("no such container %q", container)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("engine API on %s: %s", sock, resp.Status)
	}
	var inspect struct {
		State struct {
			Running bool
			Pid     int
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&inspect); err != nil {
		return 0, fmt.Errorf("engine API on %s: %w", sock, err)
	}
	if !inspect.State.Running || inspect.State.Pid <= 0 {
		return 0, fmt.Errorf("container %q is not running", container)
	}
	return inspect.State.Pid, nil
}
