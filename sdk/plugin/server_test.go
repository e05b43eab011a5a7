package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

func TestErrorsMapToCodes(t *testing.T) {
	cases := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("cli x: %w", sdk.ErrInvalidConfig), codes.InvalidArgument},
		{fmt.Errorf("s: %w", sdk.ErrSessionNotFound), codes.NotFound},
		{fmt.Errorf("t1: %w", sdk.ErrTurnRunning), codes.FailedPrecondition},
		{fmt.Errorf("steer: %w", sdk.ErrUnsupported), codes.Unimplemented},
		{sdk.ErrShuttingDown, codes.Unavailable},
		{errors.New("disk full"), codes.Internal},
		{status.Error(codes.ResourceExhausted, "chosen by the backend"), codes.ResourceExhausted},
	}
	for _, tc := range cases {
		st := status.Convert(plugin.ToStatus(tc.err))
		if st.Code() != tc.want {
			t.Errorf("%v mapped to %v, want %v", tc.err, st.Code(), tc.want)
		}
		if st.Message() != tc.err.Error() && tc.want != codes.ResourceExhausted {
			t.Errorf("%v: message became %q; the plugin's message must be kept", tc.err, st.Message())
		}
	}
}

func TestWatchParentNoticesReparenting(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := plugin.WatchParent(ctx, 4242, func() int { return int(ppid.Load()) }, time.Millisecond)
	select {
	case <-gone:
		t.Fatal("reported gone while the parent is unchanged")
	case <-time.After(20 * time.Millisecond):
	}
	ppid.Store(1)
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("did not notice the parent change")
	}
}
