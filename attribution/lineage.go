// This file walks a process's ancestry through ProcessCache: the
// "process.parent" and lineage of an event.

package attribution

// Lineage returns the process and its ancestors, nearest first: its
// parent, the parent's parent… up to and including the session leader or
// pid 1, at most max processes (DefaultMaxLineage when max <= 0). Each
// parent must have started no later than its child; a parent that is gone
// and was never recorded, or whose pid now names a newer process, ends the
// list. Only a failure to describe pid itself is an error.
func (c *ProcessCache) Lineage(pid int32, max int) ([]*Process, error) {
	if max <= 0 {
		max = DefaultMaxLineage
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.get(pid, ^uint64(0))
	if err != nil {
		return nil, err
	}
	return c.lineage(e, max), nil
}

func (c *ProcessCache) lineage(e *procEntry, max int) []*Process {
	out := []*Process{e.p}
	seen := map[int32]bool{e.key.pid: true}
	for len(out) < max {
		p := e.p
		if p.PID == 1 || p.PID == p.SessionLeader || p.PPID <= 0 || seen[p.PPID] {
			break
		}
		parent, err := c.get(p.PPID, e.key.start)
		if err != nil {
			break
		}
		seen[p.PPID] = true
		out = append(out, parent.p)
		e = parent
	}
	return out
}
