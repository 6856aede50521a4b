"""What every stage needs: atomic file output and the image-array format (io), device,
threads, logging, precision and one-line user errors (runtime, errors), the help formatter (cli),
uint8 images as tensors (tensors), and GPUs of its own for each job on a workstation (gpu_slots,
a launcher the GPU rules start stages under)."""
