"""Image sets (digits offline; MNIST, Fashion-MNIST, CIFAR-10, SVHN downloaded) and
verified, resumable downloads."""
