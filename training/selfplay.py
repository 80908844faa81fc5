"""Alternating self-play with MaskablePPO (see fraudarena_env/train.py and training/README.md).

    python training/selfplay.py --quick
    python training/selfplay.py --task task_3 --generations 4 --timesteps 100000 --out runs/t3
"""

from fraudarena_env.train import main

if __name__ == "__main__":
    main()
