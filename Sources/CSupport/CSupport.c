#include "CSupport.h"

void csupport_link_anchor(void) {}

__thread csupport_iova_thread_entry csupport_iova_thread_current = {0, 0};

__thread csupport_dma_thread_entry csupport_dma_thread_current = {0, 0};
