void csupport_link_anchor(void) {}
