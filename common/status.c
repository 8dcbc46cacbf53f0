/*
 * status.c - what each SHMQ_* status means, in words (shmq_strerror).
 *
 * In the core library because the daemon reports the same statuses in its
 * log as the clients do to their users.
 */
#include "shmq.h"

const char *shmq_strerror(int status)
{
	switch (status) {
	case SHMQ_OK:        return "success";
	case SHMQ_EOS:       return "end of stream";
	case SHMQ_EOS_LOST:  return "end of stream, but a producer died without detaching";
	case SHMQ_EINVAL:    return "invalid argument";
	case SHMQ_ENAME:     return "invalid queue name (1-255 bytes of A-Za-z0-9._-, not starting with '.')";
	case SHMQ_ECLOSED:   return "queue is closed";
	case SHMQ_ETIMEDOUT: return "timed out";
	case SHMQ_EAGAIN:    return "would block";
	case SHMQ_E2BIG:     return "message too big";
	case SHMQ_EMSGSIZE:  return "receive buffer too small for the message";
	case SHMQ_ENOENT:    return "no such queue";
	case SHMQ_EEXIST:    return "queue already exists";
	case SHMQ_EACCES:    return "permission denied";
	case SHMQ_ENODAEMON: return "daemon unreachable";
	case SHMQ_EPROTO:    return "protocol error (daemon and library versions differ?)";
	case SHMQ_ECORRUPT:  return "queue memory is corrupt";
	case SHMQ_ENOSPC:    return "out of shared memory";
	case SHMQ_ELIMIT:    return "daemon limit reached";
	case SHMQ_EROLE:     return "handle not opened for this operation";
	case SHMQ_EINTR:     return "interrupted by a signal";
	case SHMQ_EBUSY:     return "queue lock held by a stalled process";
	case SHMQ_ESYS:      return "system call failed";
	case SHMQ_ENOMEM:    return "out of memory";
	case SHMQ_ELEASE:    return "lease lost: it ended before this call, and the message may be another consumer's now";
	case SHMQ_EDEADLK:   return "deadlock: shmqd failed this blocked call to break a deadlock";
	default:             return "unknown status";
	}
}
