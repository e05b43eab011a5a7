package convert

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tthost/tthost/sdk"
)

// errorCodes pairs each sdk sentinel with the gRPC code it travels as;
// both directions read this one table.
var errorCodes = []struct {
	err  error
	code codes.Code
}{
	{sdk.ErrInvalidConfig, codes.InvalidArgument},
	{sdk.ErrSessionNotFound, codes.NotFound},
	{sdk.ErrTurnRunning, codes.FailedPrecondition},
	{sdk.ErrUnsupported, codes.Unimplemented},
	{sdk.ErrShuttingDown, codes.Unavailable},
}

// ErrorToStatus is the plugin side: a backend's error becomes the gRPC
// status its sentinel travels as (a status the backend made itself is
// kept; anything else is Internal), with the backend's message.
func ErrorToStatus(err error) error {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return status.Error(e.code, err.Error())
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// SentinelOf is the host side: the sdk sentinel a plugin's status stands
// for, or nil. Unavailable is ErrShuttingDown only when the message says
// so: a broken connection is Unavailable too.
func SentinelOf(st *status.Status) error {
	for _, e := range errorCodes {
		if st.Code() != e.code {
			continue
		}
		if e.err == sdk.ErrShuttingDown && !strings.Contains(st.Message(), sdk.ErrShuttingDown.Error()) {
			return nil
		}
		return e.err
	}
	return nil
}
