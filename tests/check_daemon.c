/* check_daemon.c - placeholder */
int main(void) { return 0; }
