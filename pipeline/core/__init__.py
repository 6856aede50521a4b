"""What every stage needs: atomic file output and the image-array format (io), device,
threads, logging, precision and one-line user errors (runtime, errors), and one GPU per job on a
workstation (gpu_slots, a launcher the GPU rules start stages under)."""
