package manager

import "time"

// HoldModel holds the model lock for d, as a request that works hard would.
func (m *Manager) HoldModel(d time.Duration) {
	m.mu.Lock()
	time.Sleep(d)
	m.mu.Unlock()
}
