package resilience

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/redis/go-redis/v9"
)

// failoverOptions turns a Sentinel cfg into go-redis failover options
// with the same fail-fast settings as [clientOptions].
func failoverOptions(cfg Config, o Options) *redis.FailoverOptions {
	base := clientOptions(Config{Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB, TLS: cfg.TLS}, o)
	fo := &redis.FailoverOptions{
		MasterName:       cfg.MasterName,
		SentinelAddrs:    append([]string(nil), cfg.Addrs...),
		SentinelUsername: cfg.SentinelUsername,
		SentinelPassword: cfg.SentinelPassword,
		Username:         cfg.Username,
		Password:         cfg.Password,
		DB:               cfg.DB,
		// The fail-fast settings are clientOptions', in one place.
		MaxRetries:            base.MaxRetries,
		DialerRetries:         base.DialerRetries,
		DialTimeout:           base.DialTimeout,
		ContextTimeoutEnabled: base.ContextTimeoutEnabled,
		PoolTimeout:           base.PoolTimeout,
		PoolSize:              base.PoolSize,
		DisableIdentity:       base.DisableIdentity,
		Dialer:                base.Dialer,
	}
	if cfg.TLS {
		// Sentinels hand out addresses; the server name is each dial's
		// host, which crypto/tls takes from the address when ServerName
		// is empty only through tls.Dial: set it per connection instead.
		fo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		fo.Dialer = tlsDialer(o, fo.TLSConfig)
	}
	return fo
}

// clusterOptions turns a Cluster cfg into go-redis cluster options with
// the same fail-fast settings as [clientOptions]. MaxRedirects stays at
// go-redis's default: following a MOVED after a failover is the cluster
// working, not a retry, and every attempt shares the one deadline.
func clusterOptions(cfg Config, o Options) *redis.ClusterOptions {
	base := clientOptions(Config{Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password, TLS: cfg.TLS}, o)
	co := &redis.ClusterOptions{
		Addrs:    append([]string(nil), cfg.Addrs...),
		Username: cfg.Username,
		Password: cfg.Password,
		// The fail-fast settings are clientOptions', in one place.
		MaxRetries:            base.MaxRetries,
		DialerRetries:         base.DialerRetries,
		DialTimeout:           base.DialTimeout,
		ContextTimeoutEnabled: base.ContextTimeoutEnabled,
		PoolTimeout:           base.PoolTimeout,
		PoolSize:              base.PoolSize,
		DisableIdentity:       base.DisableIdentity,
		Dialer:                base.Dialer,
		// go-redis reloads the slot map in the background, without a
		// deadline, asking one node after the other: a paused node must
		// not hold it up for seconds. Operations carry their own deadline.
		ReadTimeout:  o.DialTimeout,
		WriteTimeout: o.DialTimeout,
	}
	if cfg.TLS {
		co.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		co.Dialer = tlsDialer(o, co.TLSConfig)
	}
	return co
}

// tlsDialer dials with Options.Dialer (or a net.Dialer) and wraps the
// connection in TLS with the dialled host as server name.
func tlsDialer(o Options, conf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if o.Dialer != nil {
			conn, err = o.Dialer(ctx, network, addr)
		} else {
			conn, err = (&net.Dialer{Timeout: o.DialTimeout}).DialContext(ctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		c := conf.Clone()
		c.ServerName, _, _ = net.SplitHostPort(addr)
		return tls.Client(conn, c), nil
	}
}

// probeFailover pings the master Sentinel names now: it asks the
// sentinels afresh (all at once, the first answer wins) and pings that
// address on a connection of its own, so a promoted replica is found as
// soon as Sentinel knows it. It builds no failover client: go-redis
// resolves the made-up address of one ("FailoverClient") as it builds it.
func probeFailover(fo *redis.FailoverOptions, o Options) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		addr, err := askMaster(ctx, fo, o)
		if err != nil {
			return err
		}
		base := &redis.Options{Addr: addr, Username: fo.Username, Password: fo.Password, DB: fo.DB,
			TLSConfig: fo.TLSConfig, Dialer: fo.Dialer}
		err = probeWith(base, o)(ctx)
		if redis.IsAuthError(err) {
			return fmt.Errorf("redis master %s refused the data nodes' credentials (%s's username= and password=, or %s): %w", addr, EnvURL, EnvPassword, err)
		}
		return err
	}
}

// askMaster asks every sentinel of fo for the master's address and
// returns the first answer.
func askMaster(ctx context.Context, fo *redis.FailoverOptions, o Options) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		addr string
		err  error
	}
	answers := make(chan answer, len(fo.SentinelAddrs))
	for _, addr := range fo.SentinelAddrs {
		go func() {
			sc := redis.NewSentinelClient(sentinelOptions(fo, addr, o))
			defer func() { _ = sc.Close() }()
			stop := context.AfterFunc(ctx, func() { _ = sc.Close() })
			defer stop()
			m, err := sc.GetMasterAddrByName(ctx, fo.MasterName).Result()
			if err == nil && len(m) != 2 {
				err = errors.New("sentinel: malformed master address")
			}
			if err != nil {
				answers <- answer{err: err}
				return
			}
			answers <- answer{addr: net.JoinHostPort(m[0], m[1])}
		}()
	}
	var errs []error
	for range fo.SentinelAddrs {
		a := <-answers
		if a.err == nil {
			return a.addr, nil
		}
		errs = append(errs, a.err)
	}
	if slices.ContainsFunc(errs, redis.IsAuthError) {
		return "", fmt.Errorf("redis sentinel: the sentinels refused their credentials (%s's user-info, or sentinel_username= and sentinel_password=): %w", EnvURL, errors.Join(errs...))
	}
	return "", fmt.Errorf("redis sentinel: no sentinel named the master: %w", errors.Join(errs...))
}

// sentinelOptions are a plain client's options for the sentinel at addr.
func sentinelOptions(fo *redis.FailoverOptions, addr string, o Options) *redis.Options {
	return &redis.Options{
		Addr: addr, Username: fo.SentinelUsername, Password: fo.SentinelPassword,
		Dialer: fo.Dialer, TLSConfig: fo.TLSConfig, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: o.DialTimeout, ContextTimeoutEnabled: true,
		PoolSize:        2, // two: see probeWith
		DisableIdentity: true,
	}
}

func cloneFailover(o *redis.FailoverOptions) *redis.FailoverOptions {
	c := *o
	c.SentinelAddrs = append([]string(nil), o.SentinelAddrs...)
	if o.TLSConfig != nil {
		c.TLSConfig = o.TLSConfig.Clone()
	}
	return &c
}

func cloneCluster(o *redis.ClusterOptions) *redis.ClusterOptions {
	c := *o
	c.Addrs = append([]string(nil), o.Addrs...)
	if o.TLSConfig != nil {
		c.TLSConfig = o.TLSConfig.Clone()
	}
	return &c
}

// nodeOptions are the options of a plain client to one cluster node,
// with the cluster's credentials, TLS and dialer: for probing the node.
func nodeOptions(co *redis.ClusterOptions, addr string, o Options) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		Username:              co.Username,
		Password:              co.Password,
		TLSConfig:             co.TLSConfig,
		Dialer:                co.Dialer,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           o.DialTimeout,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
	}
}

// newTopologyRedis is [NewRedis] for Sentinel and Cluster.
func newTopologyRedis(cfg Config, o Options) (*Redis, error) {
	if len(cfg.Addrs) == 0 {
		if cfg.Addr == "" {
			return nil, fmt.Errorf("resilience: Config.Addrs is empty: %w", ErrInvalidOption)
		}
		cfg.Addrs = []string{cfg.Addr}
	}
	switch cfg.Topology {
	case TopologySentinel:
		if cfg.MasterName == "" {
			return nil, fmt.Errorf("resilience: Config.MasterName is empty (Sentinel): %w", ErrInvalidOption)
		}
		fo := failoverOptions(cfg, o)
		fresh := func() redis.UniversalClient { return redis.NewFailoverClient(cloneFailover(fo)) }
		r := newRedis(o, cfg.String(), true, fresh())
		r.cfg = cfg
		r.fresh = fresh
		r.probe = probeFailover(fo, o)
		near, off := nearSetup(o, cfg.DB, cfg.Username, false)
		r.setNear(near, off, nil)
		r.start()
		return r, nil
	case TopologyCluster:
		co := clusterOptions(cfg, o)
		r := newRedis(o, cfg.String(), true, redis.NewClusterClient(cloneCluster(co)))
		r.cfg = cfg
		r.fresh = func() redis.UniversalClient { return redis.NewClusterClient(cloneCluster(co)) }
		r.probe = probeCluster(co, o)
		r.cluster = newClusterGuards(r, co)
		near, off := nearSetup(o, 0, cfg.Username, false)
		r.setNear(near, off, nil)
		r.start()
		return r, nil
	}
	return nil, fmt.Errorf("resilience: Config.Topology is unknown: %w", ErrInvalidOption)
}

// probeCluster pings some node of the cluster with a cluster client of
// its own: the probe of the guard of operations that name no key.
func probeCluster(co *redis.ClusterOptions, o Options) func(ctx context.Context) error {
	po := cloneCluster(co)
	po.PoolSize = 2
	po.PoolTimeout = o.DialTimeout
	po.ReadTimeout = o.DialTimeout
	po.WriteTimeout = o.DialTimeout
	return func(ctx context.Context) error {
		c := redis.NewClusterClient(cloneCluster(po))
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer func() {
			stop()
			_ = c.Close()
		}()
		return c.Ping(ctx).Err()
	}
}
