package healthhandler

import (
	"github.com/steadfast-go/steadfast/resilience"
)

// Outputs of the topology observations, for everyone.
const (
	topologyOutputUnknown  = "redis topology unknown"
	topologyOutputQuorum   = "sentinel quorum lost"
	topologyOutputSentinel = "no sentinel reachable"
	topologyOutputNode     = "redis node failing"
	topologyOutputSlots    = "redis cluster slots not covered"
)

// sentinelFigures is the observedValue of "redis:sentinels".
type sentinelFigures struct {
	Reachable int  `json:"reachable"`
	Total     int  `json:"total"`
	Quorum    bool `json:"quorum"`
}

// nodeFigures is the observedValue of "redis:nodes".
type nodeFigures struct {
	Role    string `json:"role"`
	State   string `json:"state"`
	Breaker string `json:"breaker,omitempty"`
}

// slotFigures is the observedValue of "redis:slots".
type slotFigures struct {
	Covered int `json:"covered"`
	Total   int `json:"total"`
}

// topologyObservations describes a Sentinel or Cluster deployment. A
// trouble that leaves caching possible elsewhere is bad, warn for a cache
// and fail for a critical Redis.
func topologyObservations(ts resilience.TopologyStatus, err error, critical bool) []Observation {
	bad := StatusWarn
	if critical {
		bad = StatusFail
	}
	if err != nil {
		ob := Observation{Measurement: "topology", Status: bad, Output: topologyOutputUnknown, Detail: err.Error()}
		if ts.Topology == resilience.TopologySentinel {
			ob = Observation{Measurement: "sentinels", Status: bad, Output: topologyOutputSentinel, Detail: err.Error(),
				Value: sentinelFigures{Reachable: ts.SentinelsReachable, Total: ts.Sentinels}}
		}
		return []Observation{ob}
	}
	var obs []Observation
	switch ts.Topology {
	case resilience.TopologySentinel:
		s := Observation{Measurement: "sentinels", Status: StatusPass,
			Value: sentinelFigures{Reachable: ts.SentinelsReachable, Total: ts.Sentinels, Quorum: ts.Quorum}}
		if !ts.Quorum {
			s.Status, s.Output = bad, topologyOutputQuorum
		}
		obs = append(obs, s, Observation{Measurement: "master", ComponentID: ts.Master, Status: StatusPass, Value: "master"})
		for _, n := range ts.Nodes {
			obs = append(obs, Observation{Measurement: "replicas", ComponentID: n.Addr, Status: StatusPass, Value: n.State})
		}
	case resilience.TopologyCluster:
		for _, n := range ts.Nodes {
			ob := Observation{Measurement: "nodes", ComponentID: n.Addr, Status: StatusPass,
				Value: nodeFigures{Role: n.Role, State: n.State}}
			if n.Role == "master" {
				ob.Value = nodeFigures{Role: n.Role, State: n.State, Breaker: n.Breaker.String()}
				if n.State != "ok" || n.Breaker != resilience.StateClosed {
					ob.Status, ob.Output = bad, topologyOutputNode
				}
			}
			obs = append(obs, ob)
		}
		slots := Observation{Measurement: "slots", Status: StatusPass,
			Value: slotFigures{Covered: ts.SlotsCovered, Total: resilience.ClusterSlots}}
		if ts.SlotsCovered < resilience.ClusterSlots {
			slots.Status, slots.Output = bad, topologyOutputSlots
		}
		obs = append(obs, slots)
	}
	return obs
}
