// speculators-train (in progress).
int main() { return 0; }
