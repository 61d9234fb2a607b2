package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ownWrites remembers a controller's last status write per object (its UID, the
// resourceVersion the write returned and when), so that a reconcile that reads an
// older copy from the cache waits for the newer one instead of acting twice on what
// it already decided (say, ending a task twice). The write's own event brings the
// object back once the cache has it.
type ownWrites struct {
	m sync.Map // types.NamespacedName -> lastWrite
}

type lastWrite struct {
	uid types.UID
	rv  string
	at  time.Time
}

// wrote records a write that returned obj.
func (w *ownWrites) wrote(obj client.Object, at time.Time) {
	w.m.Store(client.ObjectKeyFromObject(obj), lastWrite{uid: obj.GetUID(), rv: obj.GetResourceVersion(), at: at})
}

// behind reports whether obj, as read from the cache, is older than our last write of it.
func (w *ownWrites) behind(obj client.Object) bool {
	v, ok := w.m.Load(client.ObjectKeyFromObject(obj))
	if !ok || v.(lastWrite).uid != obj.GetUID() {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), v.(lastWrite).rv)
	return err == nil && cmp < 0
}

// isLast reports whether obj is exactly our last write of it: the event of our own
// write, which tells the controller nothing it did not decide.
func (w *ownWrites) isLast(obj client.Object) bool {
	v, ok := w.m.Load(client.ObjectKeyFromObject(obj))
	return ok && v.(lastWrite).uid == obj.GetUID() && v.(lastWrite).rv == obj.GetResourceVersion()
}

// last is when we last wrote obj (ok false when we never did, or wrote an earlier
// object of the same name).
func (w *ownWrites) last(obj client.Object) (time.Time, bool) {
	v, ok := w.m.Load(client.ObjectKeyFromObject(obj))
	if !ok || v.(lastWrite).uid != obj.GetUID() {
		return time.Time{}, false
	}
	return v.(lastWrite).at, true
}

// forget drops an object that is gone (or finished, and never written again).
func (w *ownWrites) forget(key types.NamespacedName) { w.m.Delete(key) }
