//go:build unix

package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ClusterOptions configure a cluster. The zero value runs three masters
// with one replica each, with a cluster-node-timeout of 500 ms.
type ClusterOptions struct {
	// Binary and CLI are the paths of redis-server and redis-cli. Empty
	// means looked up on PATH.
	Binary, CLI string
	// Masters is the number of masters; zero means 3 (the least
	// redis-cli --cluster create accepts).
	Masters int
	// Replicas is the number of replicas per master; zero means 1, and a
	// negative number none.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may not answer
	// before it is failed and its replica promoted. Zero means 500 ms.
	NodeTimeout time.Duration
}

// Cluster is a Redis Cluster of redis-server processes on 127.0.0.1, made
// with redis-cli --cluster create. Each node is a [Server]: it can be
// killed, paused and restarted (keeping its node id: its nodes.conf stays
// in its directory). Close stops them all.
type Cluster struct {
	// Nodes are the servers, masters first as created (roles change with
	// failovers: see [Cluster.Masters]).
	Nodes []*Server
}

// StartCluster starts the nodes, joins them with redis-cli --cluster
// create and waits until every node reports cluster_state:ok. On error
// nothing is left running.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	opts.Replicas = max(opts.Replicas, 0)
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 500 * time.Millisecond
	}
	cli, err := program(opts.CLI, "redis-cli")
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	n := opts.Masters * (1 + opts.Replicas)
	for range n {
		s, err := Start(ctx, Options{Binary: opts.Binary, Args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(opts.NodeTimeout.Milliseconds(), 10),
			// A node that lost its master keeps serving the other slots.
			"--cluster-require-full-coverage", "no",
			// Replicas sync at once, not after the default 5 s wait.
			"--repl-diskless-sync-delay", "0",
		}})
		if err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("redis-cli --cluster create: %w: %s", err, lastLines(string(out), 3)), c.Close())
	}
	if err := c.WaitOK(cctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	// A replica that never synced refuses to take over: wait for every
	// replica's link to its master.
	for _, s := range c.Nodes {
		if info, err := s.command(cctx, "INFO", "replication"); err == nil && strings.Contains(info, "role:slave") {
			if err := waitInfo(cctx, s, "replication", "master_link_status:up"); err != nil {
				return nil, errors.Join(err, c.Close())
			}
		}
	}
	return c, nil
}

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Node returns the server at addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	return serverAt(c.Nodes, addr)
}

// WaitOK waits until every running node reports cluster_state:ok and
// knows every node.
func (c *Cluster) WaitOK(ctx context.Context) error {
	for {
		ok := true
		for _, s := range c.Nodes {
			if s.PID() == 0 {
				continue
			}
			info, err := s.command(ctx, "CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))+"\r") {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster not ok: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID, Addr string
	// Master is true for a master, false for a replica.
	Master bool
	// Failed is true when the node is flagged fail or fail?.
	Failed bool
	// MasterID is a replica's master's ID.
	MasterID string
	// Slots are the slot ranges a master serves, as "0-5460".
	Slots []string
}

// ClusterNodes asks the first running node that answers for CLUSTER
// NODES, skipping the one at skip (a node about to be faulted, say).
func (c *Cluster) ClusterNodes(ctx context.Context, skip string) ([]ClusterNode, error) {
	lastErr := ErrNotRunning
	for _, s := range c.Nodes {
		if s.Addr() == skip || s.PID() == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		out, err := s.command(qctx, "CLUSTER", "NODES")
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		return ParseClusterNodes(out), nil
	}
	return nil, lastErr
}

// ParseClusterNodes parses the text of CLUSTER NODES.
func ParseClusterNodes(text string) []ClusterNode {
	var nodes []ClusterNode
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := f[2]
		n := ClusterNode{ID: f[0], Addr: addr, MasterID: f[3]}
		for _, fl := range strings.Split(flags, ",") {
			switch fl {
			case "master":
				n.Master = true
			case "fail", "fail?":
				n.Failed = true
			}
		}
		if n.MasterID == "-" {
			n.MasterID = ""
		}
		for _, sl := range f[8:] {
			if !strings.HasPrefix(sl, "[") {
				n.Slots = append(n.Slots, sl)
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// MasterFor returns the address of the master serving slot, as the
// cluster (asked through a node other than skip) sees it now.
func (c *Cluster) MasterFor(ctx context.Context, slot int, skip string) (string, error) {
	nodes, err := c.ClusterNodes(ctx, skip)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if !n.Master || n.Failed {
			continue
		}
		for _, r := range n.Slots {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && a <= slot && slot <= b {
				return n.Addr, nil
			}
		}
	}
	return "", fmt.Errorf("redis cluster: no healthy master for slot %d", slot)
}

// WaitPromoted waits until a master other than old serves slot, and
// returns when that was seen (polling every 2 ms).
func (c *Cluster) WaitPromoted(ctx context.Context, slot int, old string) (string, time.Time, error) {
	for {
		if m, err := c.MasterFor(ctx, slot, old); err == nil && m != old {
			return m, time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return "", time.Time{}, fmt.Errorf("redis cluster: slot %d not promoted away from %s: %w", slot, old, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Close stops every node and removes their directories.
func (c *Cluster) Close() error {
	var errs []error
	for _, s := range c.Nodes {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// key, or of its {hash tag} when it has a non-empty one, mod 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// serverAt returns the server of servers listening on addr, or nil.
func serverAt(servers []*Server, addr string) *Server {
	for _, s := range servers {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}
