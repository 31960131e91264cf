package runner

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type fixedResolver struct {
	addrs []netip.Addr
	err   error
}

func (f fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return f.addrs, f.err
}

func TestDoctorEgress(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("# x\nnameserver 127.0.0.53\noptions edns0\n"), 0o644)
	ok := doctorEgress(context.Background(), fixedResolver{addrs: []netip.Addr{netip.MustParseAddr("160.79.104.10")}}, conf)
	if !ok.OK || !strings.Contains(ok.Detail, "160.79.104.10") {
		t.Errorf("resolving: %+v", ok)
	}
	bad := doctorEgress(context.Background(), fixedResolver{err: errors.New("no such host")}, conf)
	if bad.OK || bad.Unsafe || !strings.Contains(bad.Detail, "127.0.0.53") || !strings.Contains(bad.Detail, "no such host") {
		t.Errorf("not resolving: %+v, want a warning naming the nameservers", bad)
	}
	local := doctorEgress(context.Background(), fixedResolver{addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, conf)
	if local.OK || !strings.Contains(local.Detail, "refuses") {
		t.Errorf("private answers: %+v", local)
	}
}
