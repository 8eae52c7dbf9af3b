package etcdstore_test

import (
	"os"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// The tests run etcd on 127.0.0.1 of a network namespace of their own.
func TestMain(m *testing.M) { os.Exit(testutil.RunInOwnNetns(m)) }
