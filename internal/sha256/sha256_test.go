package sha256_test

import (
	stdsha256 "crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/sha256"
)

// The FIPS 180-4 examples (NIST's "SHA256.pdf" and the one-million "a").
func TestKnownDigests(t *testing.T) {
	million := make([]byte, 1_000_000)
	for i := range million {
		million[i] = 'a'
	}
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{[]byte("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{[]byte("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
			"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	} {
		got := sha256.Sum256(c.in)
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("Sum256 of %d bytes = %x, want %s", len(c.in), got, c.want)
		}
	}
}

// Every length across the padding's one- and two-block cases, three blocks
// deep, gives crypto/sha256's digest.
func TestSameAsCryptoSHA256(t *testing.T) {
	data := make([]byte, 200)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(data); n++ {
		if got, want := sha256.Sum256(data[:n]), stdsha256.Sum256(data[:n]); got != want {
			t.Fatalf("Sum256 of %d bytes = %x, crypto/sha256 gives %x", n, got, want)
		}
	}
}

// FuzzSameAsCryptoSHA256 compares any input's digest with crypto/sha256's;
// the seeds sit around the padding's one-block limit.
func FuzzSameAsCryptoSHA256(f *testing.F) {
	f.Add([]byte("ratchet:pod/eth1"))
	f.Add(make([]byte, 55))
	f.Add(make([]byte, 56))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := sha256.Sum256(data), stdsha256.Sum256(data); got != want {
			t.Fatalf("Sum256(%x) = %x, crypto/sha256 gives %x", data, got, want)
		}
	})
}
