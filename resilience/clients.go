package resilience

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// clientOptions turns cfg into go-redis options that fail fast.
func clientOptions(cfg Config, o Options) *redis.Options {
	network := cfg.Network
	if network == "" {
		network = "tcp"
	}
	ro := &redis.Options{
		Network:               network,
		Addr:                  cfg.Addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		MaxRetries:            -1, // failsafe-go owns retries
		DialerRetries:         1,  // one dial per attempt; the breaker and prober do the rest
		DialTimeout:           o.DialTimeout,
		ContextTimeoutEnabled: true,
		// The pool wait gives up a little before the operation's deadline,
		// so that it reports ErrPoolTimeout (not a Redis failure) rather
		// than the deadline (a failure) when the pool, not Redis, is slow.
		PoolTimeout:     poolTimeout(o.OpTimeout),
		PoolSize:        o.PoolSize,
		DisableIdentity: true, // no CLIENT SETINFO round trip on every new connection
		// No maintenance notifications (a Redis Enterprise feature): no
		// extra command in each connection's handshake, and no cleanup
		// goroutine that outlives Close.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		ro.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	if o.Dialer != nil {
		d := o.Dialer
		ro.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d(ctx, network, addr)
			if err == nil && ro.TLSConfig != nil {
				conn = tls.Client(conn, ro.TLSConfig.Clone())
			}
			return conn, err
		}
	}
	return ro
}

func cloneOptions(o *redis.Options) *redis.Options {
	c := *o
	if o.TLSConfig != nil {
		c.TLSConfig = o.TLSConfig.Clone()
	}
	return &c
}

// poolTimeout is four fifths of the operation deadline, at least 1 ms.
func poolTimeout(op time.Duration) time.Duration {
	return max(op*4/5, time.Millisecond)
}

// topologyOptions are what the options of a Sentinel and of a Cluster
// client share: cfg's addresses and data credentials, and the fail-fast
// settings of [clientOptions], in one place.
func topologyOptions(cfg Config, o Options) *redis.UniversalOptions {
	base := clientOptions(Config{Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB, TLS: cfg.TLS}, o)
	return &redis.UniversalOptions{
		Addrs:                 append([]string(nil), cfg.Addrs...),
		Username:              cfg.Username,
		Password:              cfg.Password,
		MaxRetries:            base.MaxRetries,
		DialerRetries:         base.DialerRetries,
		DialTimeout:           base.DialTimeout,
		ContextTimeoutEnabled: base.ContextTimeoutEnabled,
		PoolTimeout:           base.PoolTimeout,
		PoolSize:              base.PoolSize,
		DisableIdentity:       base.DisableIdentity,
		Dialer:                base.Dialer,
		// go-redis passes it on to cluster clients; failover clients
		// have it off.
		MaintNotificationsConfig: base.MaintNotificationsConfig,
	}
}

// failoverOptions turns a Sentinel cfg into go-redis failover options
// with the same fail-fast settings as [clientOptions].
func failoverOptions(cfg Config, o Options) *redis.FailoverOptions {
	uo := topologyOptions(cfg, o)
	uo.MasterName = cfg.MasterName
	uo.SentinelUsername, uo.SentinelPassword = cfg.SentinelUsername, cfg.SentinelPassword
	uo.DB = cfg.DB
	fo := uo.Failover() // Addrs become the sentinels' addresses
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
	uo := topologyOptions(cfg, o)
	// go-redis reloads the slot map in the background, without a
	// deadline, asking one node after the other: a paused node must
	// not hold it up for seconds. Operations carry their own deadline.
	uo.ReadTimeout, uo.WriteTimeout = o.DialTimeout, o.DialTimeout
	co := uo.Cluster()
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
