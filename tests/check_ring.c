/* check_ring.c - placeholder */
int main(void) { return 0; }
