package stackconfig

// Storage is the validated storage backend: exactly one of its drivers is set.
type Storage struct {
	Filesystem *FilesystemStorage
}

// FilesystemStorage keeps the images on a PersistentVolume mounted into every registry pod.
type FilesystemStorage struct {
	// Mode is how the volume is provisioned: StorageHostPath, StorageDynamic or StorageExisting.
	Mode string
	// VolumeSize is the capacity of the static PV (hostPath mode).
	VolumeSize string
	// ClaimSize is what the claim requests.
	ClaimSize string
	// AccessMode of the claim: ReadWriteOnce pins every pod that mounts it to one node.
	AccessMode string
	// HostPath is the node directory (hostPath mode).
	HostPath string
	// StorageClassName is the class to provision from (dynamic) or the PV's class (existing).
	StorageClassName string
	// VolumeName is the PersistentVolume to bind (existing mode).
	VolumeName string
	// NodeName pins the hostPath PV to one node (hostPath mode; empty: any node).
	NodeName string
}

// storage builds the typed backend from the validated flat keys.
func (c *Config) storage() Storage {
	return Storage{Filesystem: &FilesystemStorage{
		Mode:             c.StorageMode,
		VolumeSize:       c.PVSize,
		ClaimSize:        c.PVCSize,
		AccessMode:       c.StorageAccessMode,
		HostPath:         c.StorageHostPath,
		StorageClassName: c.StorageClassName,
		VolumeName:       c.StorageVolumeName,
		NodeName:         c.StorageNodeName,
	}}
}
