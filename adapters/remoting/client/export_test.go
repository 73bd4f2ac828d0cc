package client

import "time"

// SetPoolIdle sets how long c keeps an idle pool (poolIdleTime).
func SetPoolIdle(c *Client, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poolIdle = d
}

// Pools returns the number of addresses c keeps a pool for.
func Pools(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pools)
}
