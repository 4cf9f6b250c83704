/*
 * proc_info_layout.c: prints the offsets and sizes of the xnu proc_info
 * structures that attribution decodes, so sockinfo_layout_test.go can check
 * the Go constants against a C compiler's layout.
 *
 * The structures are transcribed from apple-oss-distributions/xnu
 * bsd/sys/proc_info.h and bsd/sys/proc_info_private.h (commit 1031c584),
 * field for field, with the Darwin sizes of the system types spelled out so
 * that any LP64 C compiler (gcc or clang on Linux) lays them out as Darwin
 * does on arm64 and x86_64:
 *   off_t = int64, uid_t = gid_t = uint32, fsid_t = { int32 val[2] },
 *   struct in_addr = uint32, struct in6_addr = 16 bytes aligned to 4
 *   (a union of u8[16], u16[8], u32[4]), struct sockaddr_un = 106 bytes,
 *   SOCK_MAXADDRLEN = 255, IF_NAMESIZE = 16, MAX_KCTL_NAME = 96,
 *   MAXCOMLEN = 16, MAXPATHLEN = 1024.
 * Output: one "name value" pair a line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MAXCOMLEN 16
#define MAXPATHLEN 1024
#define SOCK_MAXADDRLEN 255
#define IF_NAMESIZE 16
#define MAX_KCTL_NAME 96

typedef uint32_t d_uid_t;
typedef uint32_t d_gid_t;
typedef int64_t d_off_t;
typedef struct { int32_t val[2]; } d_fsid_t;
struct d_in_addr { uint32_t s_addr; };
struct d_in6_addr { union { uint8_t u8[16]; uint16_t u16[8]; uint32_t u32[4]; } u; };
struct d_sockaddr_un { uint8_t sun_len; uint8_t sun_family; char sun_path[104]; };

struct proc_bsdinfo {
	uint32_t pbi_flags, pbi_status, pbi_xstatus, pbi_pid, pbi_ppid;
	d_uid_t pbi_uid; d_gid_t pbi_gid; d_uid_t pbi_ruid; d_gid_t pbi_rgid;
	d_uid_t pbi_svuid; d_gid_t pbi_svgid;
	uint32_t rfu_1;
	char pbi_comm[MAXCOMLEN];
	char pbi_name[2 * MAXCOMLEN];
	uint32_t pbi_nfiles, pbi_pgid, pbi_pjobc, e_tdev, e_tpgid;
	int32_t pbi_nice;
	uint64_t pbi_start_tvsec, pbi_start_tvusec;
};

struct proc_bsdshortinfo {
	uint32_t pbsi_pid, pbsi_ppid, pbsi_pgid, pbsi_status;
	char pbsi_comm[MAXCOMLEN];
	uint32_t pbsi_flags;
	d_uid_t pbsi_uid; d_gid_t pbsi_gid; d_uid_t pbsi_ruid; d_gid_t pbsi_rgid;
	d_uid_t pbsi_svuid; d_gid_t pbsi_svgid;
	uint32_t pbsi_rfu;
};

struct proc_uniqidentifierinfo {
	uint8_t p_uuid[16];
	uint64_t p_uniqueid, p_puniqueid;
	int32_t p_idversion, p_orig_ppidversion;
	uint64_t p_reserve2, p_reserve3;
};

struct proc_fileinfo {
	uint32_t fi_openflags, fi_status;
	d_off_t fi_offset;
	int32_t fi_type;
	uint32_t fi_guardflags;
};

struct vinfo_stat {
	uint32_t vst_dev; uint16_t vst_mode, vst_nlink; uint64_t vst_ino;
	d_uid_t vst_uid; d_gid_t vst_gid;
	int64_t vst_atime, vst_atimensec, vst_mtime, vst_mtimensec, vst_ctime,
	    vst_ctimensec, vst_birthtime, vst_birthtimensec;
	d_off_t vst_size; int64_t vst_blocks; int32_t vst_blksize;
	uint32_t vst_flags, vst_gen, vst_rdev;
	int64_t vst_qspare[2];
};

struct vnode_info { struct vinfo_stat vi_stat; int vi_type; int vi_pad; d_fsid_t vi_fsid; };
struct vnode_info_path { struct vnode_info vip_vi; char vip_path[MAXPATHLEN]; };
struct proc_vnodepathinfo { struct vnode_info_path pvi_cdir, pvi_rdir; };

struct in4in6_addr { uint32_t i46a_pad32[3]; struct d_in_addr i46a_addr4; };

struct in_sockinfo {
	int insi_fport, insi_lport;
	uint64_t insi_gencnt;
	uint32_t insi_flags, insi_flow;
	uint8_t insi_vflag, insi_ip_ttl;
	uint32_t rfu_1;
	union { struct in4in6_addr ina_46; struct d_in6_addr ina_6; } insi_faddr;
	union { struct in4in6_addr ina_46; struct d_in6_addr ina_6; } insi_laddr;
	struct { unsigned char in4_tos; } insi_v4;
	struct { uint8_t in6_hlim; int in6_cksum; unsigned short in6_ifindex; short in6_hops; } insi_v6;
};

struct tcp_sockinfo {
	struct in_sockinfo tcpsi_ini;
	int tcpsi_state, tcpsi_timer[4], tcpsi_mss;
	uint32_t tcpsi_flags, rfu_1;
	uint64_t tcpsi_tp;
};

struct un_sockinfo {
	uint64_t unsi_conn_so, unsi_conn_pcb;
	union { struct d_sockaddr_un ua_sun; char ua_dummy[SOCK_MAXADDRLEN]; } unsi_addr, unsi_caddr;
};

struct ndrv_info { uint32_t ndrvsi_if_family, ndrvsi_if_unit; char ndrvsi_if_name[IF_NAMESIZE]; };
struct kern_event_info { uint32_t kesi_vendor_code_filter, kesi_class_filter, kesi_subclass_filter; };
struct kern_ctl_info {
	uint32_t kcsi_id, kcsi_reg_unit, kcsi_flags, kcsi_recvbufsize, kcsi_sendbufsize, kcsi_unit;
	char kcsi_name[MAX_KCTL_NAME];
};
struct vsock_sockinfo { uint32_t local_cid, local_port, remote_cid, remote_port; };

struct sockbuf_info {
	uint32_t sbi_cc, sbi_hiwat, sbi_mbcnt, sbi_mbmax, sbi_lowat;
	short sbi_flags, sbi_timeo;
};

struct socket_info {
	struct vinfo_stat soi_stat;
	uint64_t soi_so, soi_pcb;
	int soi_type, soi_protocol, soi_family;
	short soi_options, soi_linger, soi_state, soi_qlen, soi_incqlen, soi_qlimit, soi_timeo;
	unsigned short soi_error;
	uint32_t soi_oobmark;
	struct sockbuf_info soi_rcv, soi_snd;
	int soi_kind;
	uint32_t rfu_1;
	union {
		struct in_sockinfo pri_in;
		struct tcp_sockinfo pri_tcp;
		struct un_sockinfo pri_un;
		struct ndrv_info pri_ndrv;
		struct kern_event_info pri_kern_event;
		struct kern_ctl_info pri_kern_ctl;
		struct vsock_sockinfo pri_vsock;
	} soi_proto;
};

struct socket_fdinfo { struct proc_fileinfo pfi; struct socket_info psi; };

struct proc_fdinfo { int32_t proc_fd; uint32_t proc_fdtype; };

#define P(name, v) printf("%s %lu\n", name, (unsigned long)(v))
#define SFI (offsetof(struct socket_fdinfo, psi))
#define PROTO (SFI + offsetof(struct socket_info, soi_proto))

int main(void) {
	P("sizeof_socket_fdinfo", sizeof(struct socket_fdinfo));
	P("sizeof_socket_info", sizeof(struct socket_info));
	P("sizeof_in_sockinfo", sizeof(struct in_sockinfo));
	P("sizeof_tcp_sockinfo", sizeof(struct tcp_sockinfo));
	P("sizeof_un_sockinfo", sizeof(struct un_sockinfo));
	P("sizeof_vinfo_stat", sizeof(struct vinfo_stat));
	P("sizeof_proc_fdinfo", sizeof(struct proc_fdinfo));
	P("sizeof_proc_bsdinfo", sizeof(struct proc_bsdinfo));
	P("sizeof_proc_bsdshortinfo", sizeof(struct proc_bsdshortinfo));
	P("sizeof_proc_uniqidentifierinfo", sizeof(struct proc_uniqidentifierinfo));
	P("sizeof_proc_vnodepathinfo", sizeof(struct proc_vnodepathinfo));

	P("soi_type", SFI + offsetof(struct socket_info, soi_type));
	P("soi_protocol", SFI + offsetof(struct socket_info, soi_protocol));
	P("soi_family", SFI + offsetof(struct socket_info, soi_family));
	P("soi_state", SFI + offsetof(struct socket_info, soi_state));
	P("soi_kind", SFI + offsetof(struct socket_info, soi_kind));
	P("soi_proto", PROTO);
	P("insi_fport", PROTO + offsetof(struct in_sockinfo, insi_fport));
	P("insi_lport", PROTO + offsetof(struct in_sockinfo, insi_lport));
	P("insi_vflag", PROTO + offsetof(struct in_sockinfo, insi_vflag));
	P("insi_faddr", PROTO + offsetof(struct in_sockinfo, insi_faddr));
	P("insi_laddr", PROTO + offsetof(struct in_sockinfo, insi_laddr));
	P("insi_faddr_addr4", PROTO + offsetof(struct in_sockinfo, insi_faddr.ina_46.i46a_addr4));
	P("insi_laddr_addr4", PROTO + offsetof(struct in_sockinfo, insi_laddr.ina_46.i46a_addr4));
	P("tcpsi_state", PROTO + offsetof(struct tcp_sockinfo, tcpsi_state));

	P("pbi_flags", offsetof(struct proc_bsdinfo, pbi_flags));
	P("pbi_status", offsetof(struct proc_bsdinfo, pbi_status));
	P("pbi_pid", offsetof(struct proc_bsdinfo, pbi_pid));
	P("pbi_ppid", offsetof(struct proc_bsdinfo, pbi_ppid));
	P("pbi_uid", offsetof(struct proc_bsdinfo, pbi_uid));
	P("pbi_gid", offsetof(struct proc_bsdinfo, pbi_gid));
	P("pbi_ruid", offsetof(struct proc_bsdinfo, pbi_ruid));
	P("pbi_comm", offsetof(struct proc_bsdinfo, pbi_comm));
	P("pbi_name", offsetof(struct proc_bsdinfo, pbi_name));
	P("pbi_pgid", offsetof(struct proc_bsdinfo, pbi_pgid));
	P("pbi_start_tvsec", offsetof(struct proc_bsdinfo, pbi_start_tvsec));
	P("pbi_start_tvusec", offsetof(struct proc_bsdinfo, pbi_start_tvusec));

	P("pbsi_pid", offsetof(struct proc_bsdshortinfo, pbsi_pid));
	P("pbsi_ppid", offsetof(struct proc_bsdshortinfo, pbsi_ppid));
	P("pbsi_comm", offsetof(struct proc_bsdshortinfo, pbsi_comm));
	P("pbsi_uid", offsetof(struct proc_bsdshortinfo, pbsi_uid));

	P("p_uuid", offsetof(struct proc_uniqidentifierinfo, p_uuid));
	P("p_uniqueid", offsetof(struct proc_uniqidentifierinfo, p_uniqueid));
	P("p_idversion", offsetof(struct proc_uniqidentifierinfo, p_idversion));

	P("pvi_cdir_path", offsetof(struct proc_vnodepathinfo, pvi_cdir.vip_path));
	return 0;
}
