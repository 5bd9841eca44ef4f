/*
 * A hostile guest for the network tests: sends raw Ethernet frames on an interface
 * through an AF_PACKET socket, as fast as it can.
 *
 *   netflood IFACE spoof COUNT   unicast frames to 52:54:00:00:00:01 with a forged
 *                                source MAC (02:de:ad:be:ef:01)
 *   netflood IFACE bcast COUNT   broadcast frames with the card's own source MAC
 *   netflood IFACE big COUNT     65000-byte broadcast frames with the card's own MAC
 *
 * Prints "sent N" (frames the kernel accepted). Exit status 0 unless the socket fails.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: netflood IFACE spoof|bcast|big COUNT\n");
    return 2;
  }
  const char *mode = argv[2];
  long count = atol(argv[3]);
  int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (s < 0) { perror("socket"); return 1; }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); return 1; }
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 1; }
  unsigned char own[6];
  memcpy(own, ifr.ifr_hwaddr.sa_data, 6);

  size_t len = strcmp(mode, "big") == 0 ? 65000 : 60;
  unsigned char *f = calloc(1, len);
  if (!f) return 1;
  if (strcmp(mode, "spoof") == 0) {
    const unsigned char dst[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x01};
    const unsigned char forged[6] = {0x02, 0xde, 0xad, 0xbe, 0xef, 0x01};
    memcpy(f, dst, 6);
    memcpy(f + 6, forged, 6);
  } else if (strcmp(mode, "bcast") == 0 || strcmp(mode, "big") == 0) {
    memset(f, 0xff, 6);
    memcpy(f + 6, own, 6);
  } else {
    fprintf(stderr, "netflood: unknown mode %s\n", mode);
    return 2;
  }
  f[12] = 0x88; /* a local experimental EtherType (IEEE 802 88B5) */
  f[13] = 0xb5;
  for (size_t i = 14; i < len; i++) f[i] = (unsigned char)i;

  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_ifindex = ifindex;
  to.sll_halen = 6;
  memcpy(to.sll_addr, f, 6);
  long sent = 0;
  for (long i = 0; i < count; i++) {
    if (sendto(s, f, len, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)len) sent++;
  }
  printf("sent %ld\n", sent);
  return 0;
}
