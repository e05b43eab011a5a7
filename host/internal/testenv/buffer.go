package testenv

import (
	"bytes"
	"sync"
	"time"
)

// Buffer collects a child process's output while the test reads it: safe
// for one writer (exec's copier) and concurrent readers, and a test can
// wait for a line to appear instead of polling.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed by the next Write; nil until someone waits
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return n, err
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len is how much has been written so far: a mark for WaitAfter.
func (s *Buffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// WaitAfter waits until text appears in what was written after the first
// from bytes, and reports whether it did within timeout.
func (s *Buffer) WaitAfter(from int, text string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if from <= s.b.Len() && bytes.Contains(s.b.Bytes()[from:], []byte(text)) {
			s.mu.Unlock()
			return true
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}
