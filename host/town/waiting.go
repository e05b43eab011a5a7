package town

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Place is the list an agent's message sits in.
type Place string

const (
	PlaceUrgent   Place = "urgent"
	PlaceInbox    Place = "inbox"
	PlaceInFlight Place = "in_flight"
)

// Queued is one message that waits for an agent or is being worked on.
type Queued struct {
	Place Place
	// Raw is the message JSON as stored (in flight: without its u:/n: tag).
	Raw string
	// Msg is nil when Raw does not parse.
	Msg *Message
	// FromUrgent is set on an in-flight message taken from the urgent list.
	FromUrgent bool
}

// Waiting reads, without taking anything, every message an agent holds:
// its urgent list in delivery order (oldest first), its inbox from the
// front, then its in-flight list. The three lists are read in one
// transaction, so a message that Intake or Requeue moves from one list to
// another meanwhile is seen exactly once.
func (s *Store) Waiting(ctx context.Context, agent string) ([]Queued, error) {
	var urgent, inbox, inflight *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		urgent = p.LRange(ctx, s.keys.Urgent(agent), 0, -1)
		inbox = p.LRange(ctx, s.keys.Inbox(agent), 0, -1)
		inflight = p.LRange(ctx, s.keys.InFlight(agent), 0, -1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the messages of %s: %w", agent, err)
	}
	var out []Queued
	add := func(place Place, raw string) {
		m, _ := ParseMessage(raw)
		out = append(out, Queued{Place: place, Raw: raw, Msg: m})
	}
	u := urgent.Val()
	slices.Reverse(u) // tt LPUSHes urgent messages; the oldest is on the right
	for _, raw := range u {
		add(PlaceUrgent, raw)
	}
	for _, raw := range inbox.Val() {
		add(PlaceInbox, raw)
	}
	for _, stored := range inflight.Val() {
		e := DecodeEntry(stored)
		out = append(out, Queued{Place: PlaceInFlight, Raw: e.Raw, Msg: e.Msg, FromUrgent: e.Urgent})
	}
	return out, nil
}
